"""Command handlers: one IMAP session's state and the async calls into the core.

`Session.execute` runs one parsed command: it checks the state table, runs the handler,
maps core errors to NO responses once (STYLE: "let an error know its reply"), sends pending
mailbox news when RFC 3501 §7.4.1 allows, and writes the tagged reply. The session never
touches a socket; it writes to an `Output` and reads continuation lines through a callback the
connection provides (AUTHENTICATE, IDLE).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Final, NoReturn, Protocol

from rmail.server.core.accounts import Accounts
from rmail.server.core.authguard import AuthGuard, LoginLocked
from rmail.server.core.connections import ConnectionInfo, ConnectionRegistry
from rmail.server.core.errors import (AlreadyExists, AuthenticationFailed, InvalidInput,
                                      LimitExceeded, NotFound, PermissionDenied, QuotaExceeded,
                                      RmailError, StorageFull, TemporaryFailure)
from rmail.server.core.events import (Doorbell, Event, EventBus, ExternalChange,
                                      MailboxChanged, MailboxesChanged, MessageReceived)
from rmail.server.core.model import Account, Mailbox, MessageInfo
from rmail.server.core.quota import Quotas
from rmail.server.core.slicing import OnePerKey, Slicer
from rmail.server.core.storage.body import MessageBody
from rmail.server.core.storage.mail import MailStore

from . import commands as c
from ..core import mutf7
from .encode import encode, flag_list as flags_bytes, string
from .errors import BYE_DELETED, CommandError, SessionClosed
from .fetch import FetchPlan, FileRange, file_items, message_items
from .protocol import State, allowed, capabilities, login_allowed
from .search import search
from .selected import InvalidSequence, SelectedMailbox, Update
from . import stream
from .stream import StreamBroken

__all__ = ["CommandError", "Output", "Services", "Session", "SessionClosed"]

log = logging.getLogger("rmail.imap")

#: RFC 3501 §5.4: an autologout timer of at least 30 minutes.
AUTOLOGOUT: Final = 30 * 60
#: Messages per FETCH batch: bounds memory (infos, bodies) and lets other sessions run.
FETCH_BATCH: Final = 500
_SYSTEM_FLAGS: Final = b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft"
#: RFC 5530 response codes for the core's errors.
_ERROR_CODES: Final[tuple[tuple[type[RmailError], str], ...]] = (
    (NotFound, "NONEXISTENT"), (AlreadyExists, "ALREADYEXISTS"), (PermissionDenied, "NOPERM"),
    (AuthenticationFailed, "AUTHENTICATIONFAILED"), (InvalidInput, "CANNOT"),
    (QuotaExceeded, "OVERQUOTA"), (LimitExceeded, "LIMIT"),
    # A full disk is OVERQUOTA, as in Dovecot: RFC 5530 has no code for it, OVERQUOTA tells the
    # user the remedy (delete mail, which still works) and SERVERBUG would claim a bug.
    (StorageFull, "OVERQUOTA"), (TemporaryFailure, "UNAVAILABLE"),
)
#: Commands during which EXPUNGE responses are forbidden (RFC 3501 §7.4.1).
_NO_EXPUNGE: Final = (c.Fetch, c.Store, c.Search)


class Output(Protocol):
    """Where a session writes; the connection implements it over a transport."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


ReadLine = Callable[[], Awaitable["bytes | None"]]


@dataclass(frozen=True, slots=True)
class Services:
    """What sessions need from the runtime (built once per listener set)."""

    store: MailStore
    accounts: Accounts
    throttle: AuthGuard
    bus: EventBus
    connections: ConnectionRegistry
    tls_configured: bool
    max_per_user: int
    autologout: float = AUTOLOGOUT
    #: CPU seconds one SEARCH may spend on the event loop (config [limits] search_budget).
    search_budget: float | None = None
    quotas: Quotas | None = None    # APPEND and COPY check them; None in tests without
    scans: OnePerKey = field(default_factory=OnePerKey)


def _uid_set(uids: list[int]) -> str:
    """Compact a sorted UID list into "1:3,7" (RFC 4315 uid-set)."""
    parts: list[str] = []
    start = prev = None
    for u in uids:
        if start is None:
            start = prev = u
        elif u == prev + 1:
            prev = u
        else:
            parts.append(f"{start}:{prev}" if start != prev else str(start))
            start = prev = u
    if start is not None:
        parts.append(f"{start}:{prev}" if start != prev else str(start))
    return ",".join(parts)


def _list_regex(pattern: str) -> re.Pattern[str]:
    """RFC 3501 §6.3.8: "*" matches anything, "%" anything but the hierarchy separator."""
    out = []
    for ch in pattern:
        out.append(".*" if ch == "*" else "[^/]*" if ch == "%" else re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _lsub_hidden_parents(subscribed: list[str], pattern: re.Pattern[str]) -> list[str]:
    """RFC 3501 §6.3.9: when "%" hides a subscribed "foo/bar" and "foo" is not subscribed,
    LSUB returns "foo" flagged \\Noselect (whether or not "foo" exists)."""
    names = set(subscribed)
    out: set[str] = set()
    for name in subscribed:
        if pattern.fullmatch(name):
            continue
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent not in names and pattern.fullmatch(parent):
                out.add(parent)
    return sorted(out)


def _flag_lines(view: SelectedMailbox) -> bytes:
    """`* FLAGS` and `* OK [PERMANENTFLAGS ...]` listing every keyword the session's map has
    held (RFC 3501 §7.1, §7.2.6): sent at SELECT, and again before the first response that
    carries a keyword the client has not been told of (imaptest: "Keyword used without being
    in FLAGS"). Marks the list announced."""
    keywords = " ".join(view.keywords())
    flags = _SYSTEM_FLAGS + (b" " + keywords.encode() if keywords else b"") + b")"
    perm = b"()" if view.readonly else flags[:-1] + b" \\*)"
    return b"* FLAGS " + flags + b"\r\n* OK [PERMANENTFLAGS " + perm + b"] flags permitted\r\n"


def _tagged(tag: str, status: str, text: str, code: str | None = None) -> bytes:
    code_part = f"[{code}] " if code else ""
    return f"{tag} {status} {code_part}{text}\r\n".encode("utf-8")


class Session:
    """One client's IMAP session (RFC 3501 §3 states)."""

    def __init__(self, services: Services, out: Output, *, peer: str, tls_active: bool,
                 info: ConnectionInfo | None = None, read_line: ReadLine | None = None) -> None:
        self.services = services
        self.out = out
        self.peer = peer
        self.tls_active = tls_active
        self.info = info
        self.read_line = read_line
        self.state = State.NOT_AUTHENTICATED
        self.user: Account | None = None
        self.selected: SelectedMailbox | None = None
        self._bell: Doorbell | None = None
        # Set by the doorbell's filter when the mailbox list may have changed: the next sync
        # then checks that the selected mailbox still exists (and learns a new name).
        self._check_mailbox = False
        self._handlers: dict[type[c.Command], Callable[..., Awaitable[bytes]]] = {
            c.Capability: self._capability, c.Noop: self._noop, c.Check: self._noop,
            c.Logout: self._logout, c.Login: self._login_cmd,
            c.Authenticate: self._authenticate, c.StartTLS: self._starttls,
            c.Select: self._select, c.Examine: self._select, c.Create: self._create,
            c.Delete: self._delete, c.Rename: self._rename, c.Subscribe: self._subscribe,
            c.Unsubscribe: self._subscribe, c.List: self._list, c.Lsub: self._list,
            c.Status: self._status, c.Append: self._append, c.Close: self._close,
            c.Unselect: self._close, c.Expunge: self._expunge, c.UidExpunge: self._expunge,
            c.Search: self._search, c.Fetch: self._fetch, c.Store: self._store,
            c.Copy: self._copy, c.Move: self._copy, c.Namespace: self._namespace,
            c.Id: self._id, c.Enable: self._enable, c.Idle: self._idle,
        }

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def store(self):  # noqa: ANN201 - MailStore
        return self.services.store

    def capabilities(self) -> tuple[str, ...]:
        return capabilities(tls_configured=self.services.tls_configured,
                            tls_active=self.tls_active,
                            authenticated=self.state not in (State.NOT_AUTHENTICATED,))

    async def greeting(self) -> None:
        caps = " ".join(self.capabilities())
        self.out.write(f"* OK [CAPABILITY {caps}] rmail IMAP4rev1 ready\r\n".encode())
        await self.out.drain()

    async def execute(self, cmd: c.Command) -> None:
        """Run one command and write all its responses, the tagged one last.

        Raises:
            SessionClosed: the connection must close after this command.
        """
        if not allowed(self.state, cmd):
            self.out.write(_tagged(cmd.tag, "BAD", f"{type(cmd).__name__.upper()} not allowed "
                                   f"in the {self.state.value} state"))
            return
        try:
            tagged = await self._handlers[type(cmd)](cmd)
        except CommandError as exc:
            tagged = _tagged(cmd.tag, exc.status, exc.text, exc.code)
        except InvalidSequence as exc:
            tagged = _tagged(cmd.tag, "BAD", str(exc))
        except RmailError as exc:
            code = next((code for t, code in _ERROR_CODES if isinstance(exc, t)), None)
            tagged = _tagged(cmd.tag, "NO", str(exc) or "failed", code)
        except (SessionClosed, asyncio.CancelledError):
            raise
        except Exception:  # noqa: BLE001 - a bug: log it, never show a traceback (STYLE)
            log.exception("imap: %s failed", type(cmd).__name__)
            tagged = _tagged(cmd.tag, "NO", "internal server error", "SERVERBUG")
        if self.selected is not None and not isinstance(cmd, (c.Logout, c.Idle)):
            await self.sync(allow_expunge=not isinstance(cmd, _NO_EXPUNGE))
        self.out.write(tagged)
        if self.state is State.LOGOUT:
            await self.out.drain()
            raise SessionClosed()

    async def sync(self, *, allow_expunge: bool, force: bool = False) -> None:
        """Send mailbox news the client has not heard yet (RFC 3501 §7.3, §7.4.1)."""
        view = self.selected
        if view is None:
            return
        bell = self._bell
        rung = bell is not None and bell.rung
        if not (rung or force):
            if allow_expunge and view.has_pending:
                self._write_update(view.take_pending())
            return
        if bell is not None:
            bell.clear()
        try:
            if self._check_mailbox:
                self._check_mailbox = False
                await self._refresh_mailbox(view)
            changes = await self.store.changes_since(view.mailbox.id, view.modseq)
            recent: tuple[int | None, int | None] = (None, None)
            if (changes.recent_uid < changes.uidnext
                    and any(m.uid > view.max_uid for m in changes.changed)):
                # A read-only session shows what is unclaimed as \Recent without claiming it.
                recent = ((changes.recent_uid, None) if view.readonly
                          else await self._claim_recent(view.mailbox.id))
        except NotFound:
            await self._mailbox_gone()
        self._write_update(view.apply(changes, allow_expunge=allow_expunge,
                                      recent_from=recent[0], recent_to=recent[1]))

    async def _claim_recent(self, mailbox_id: int) -> tuple[int | None, int | None]:
        """Claim \\Recent (a write); when the store cannot write (a full disk), go on without:
        \\Recent is advisory, and a user must still be able to open a mailbox to free space."""
        try:
            return await self.store.claim_recent_range(mailbox_id)
        except TemporaryFailure as exc:
            log.info("imap: \\Recent not claimed in mailbox %d: %s", mailbox_id, exc)
            return None, None

    async def _refresh_mailbox(self, view: SelectedMailbox) -> None:
        """Check the selected mailbox is still the one selected: DELETE removes it (or leaves
        a \\Noselect placeholder), and re-creating the name gives a new UIDVALIDITY; RENAME
        keeps it (same id and UIDs), so the session carries on under the new name.

        Raises:
            NotFound: the mailbox is gone.
        """
        for box in await self.store.list_mailboxes(self._user_id()):
            if box.id == view.mailbox.id and box.uidvalidity == view.mailbox.uidvalidity:
                view.mailbox = box
                return
        raise NotFound("the selected mailbox no longer exists")

    async def _mailbox_gone(self) -> NoReturn:
        """Another session deleted the selected mailbox. IMAP4rev1 cannot say so and carry
        on, so the session ends with BYE (as Dovecot does), never with NO to every command;
        the client reconnects and sees the mailbox list as it is now."""
        self.out.write(encode(BYE_DELETED))
        self._deselect()
        self.state = State.LOGOUT
        await self.out.drain()
        raise SessionClosed()

    def _write_update(self, update: Update) -> None:
        view = self.selected
        assert view is not None
        if not (update or view.keywords_stale):
            return
        parts = [b"* %d EXPUNGE\r\n" % s for s in update.expunged]
        if update.exists is not None:
            parts.append(b"* %d EXISTS\r\n" % update.exists)
        if update.recent is not None:
            parts.append(b"* %d RECENT\r\n" % update.recent)
        if view.keywords_stale:
            # New keywords (another session's STORE, a delivery or APPEND with keywords):
            # the grown FLAGS list comes before any FETCH that shows them (RFC 3501 §7.2.6).
            parts.append(_flag_lines(view))
        for seq, uid in update.flags:
            parts.append(b"* %d FETCH (UID %d FLAGS %b)\r\n" % (
                seq, uid, flags_bytes(view.flags_of(seq), view.is_recent(uid))))
        self.out.write(b"".join(parts))

    def _require_view(self) -> SelectedMailbox:
        if self.selected is None:
            raise CommandError("BAD", "no mailbox selected")
        return self.selected

    def _require_writable(self) -> SelectedMailbox:
        view = self._require_view()
        if view.readonly:
            raise CommandError("NO", "mailbox is read-only", "READ-ONLY")
        return view

    def close(self) -> None:
        """Release subscriptions; called by the connection when it ends."""
        self._deselect()

    def _deselect(self) -> None:
        if self._bell is not None:
            self.services.bus.unsubscribe(self._bell)
            self._bell = None
        self.selected = None
        self._check_mailbox = False
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED

    # -- any state --------------------------------------------------------------------------

    async def _capability(self, cmd: c.Capability) -> bytes:
        self.out.write(("* CAPABILITY " + " ".join(self.capabilities()) + "\r\n").encode())
        return _tagged(cmd.tag, "OK", "CAPABILITY completed")

    async def _noop(self, cmd: c.Noop | c.Check) -> bytes:
        return _tagged(cmd.tag, "OK", f"{type(cmd).__name__.upper()} completed")

    async def _logout(self, cmd: c.Logout) -> bytes:
        self.out.write(b"* BYE rmail logging out\r\n")
        self._deselect()
        self.state = State.LOGOUT
        return _tagged(cmd.tag, "OK", "LOGOUT completed")

    async def _id(self, cmd: c.Id) -> bytes:
        self.out.write(b'* ID ("name" "rmail" "vendor" "rmail")\r\n')
        return _tagged(cmd.tag, "OK", "ID completed")

    # -- not authenticated ------------------------------------------------------------------

    async def _starttls(self, cmd: c.StartTLS) -> bytes:
        # The connection performs the handshake; reaching here means it cannot.
        if self.tls_active:
            raise CommandError("BAD", "TLS is already active")
        raise CommandError("NO", "TLS is not configured on this server")

    async def _login_cmd(self, cmd: c.Login) -> bytes:
        return await self.login(cmd.tag, cmd.userid, cmd.password)

    async def login(self, tag: str, username: str, password: str) -> bytes:
        """Shared by LOGIN and AUTHENTICATE: checks, throttling, connection caps."""
        if not login_allowed(tls_configured=self.services.tls_configured,
                             tls_active=self.tls_active):
            # RFC 3501 §6.2.3 LOGINDISABLED; RFC 5530 PRIVACYREQUIRED.
            raise CommandError("NO", "use STARTTLS before logging in", "PRIVACYREQUIRED")
        try:
            async with self.services.throttle.attempt("imap", self.peer, username):
                account = await self.services.accounts.authenticate(username, password)
        except LoginLocked:
            # RFC 5530 UNAVAILABLE: a temporary refusal; the password was not checked.
            raise CommandError("NO", "too many failed logins; try again later", "UNAVAILABLE") from None
        except AuthenticationFailed:
            raise CommandError("NO", "invalid credentials", "AUTHENTICATIONFAILED") from None
        registry = self.services.connections
        if registry.count_user("imap", account.address) >= self.services.max_per_user:
            raise CommandError("NO", "too many connections for this user", "LIMIT")
        self.user = account
        self.state = State.AUTHENTICATED
        if self.info is not None:
            registry.update(self.info, force=True, user=account.address, state="authenticated")
        caps = " ".join(self.capabilities())
        return _tagged(tag, "OK", "logged in", f"CAPABILITY {caps}")

    async def _authenticate(self, cmd: c.Authenticate) -> bytes:
        """AUTHENTICATE PLAIN (RFC 4616) and LOGIN; "*" cancels (RFC 3501 §6.2.2)."""
        if cmd.mechanism not in ("PLAIN", "LOGIN"):
            raise CommandError("NO", "unsupported mechanism", "CANNOT")
        if not login_allowed(tls_configured=self.services.tls_configured,
                             tls_active=self.tls_active):
            raise CommandError("NO", "use STARTTLS before logging in", "PRIVACYREQUIRED")
        if cmd.mechanism == "PLAIN":
            raw = cmd.initial_response
            if raw is None:
                raw = await self._sasl_step(b"")
            payload = self._b64(raw)
            parts = payload.split(b"\x00")
            if len(parts) != 3:
                raise CommandError("BAD", "malformed PLAIN response")
            authz, user, password = parts
            if authz and authz != user:
                raise CommandError("NO", "authorization identity must match", "AUTHORIZATIONFAILED")
        else:
            first = cmd.initial_response
            user = self._b64(first if first is not None else await self._sasl_step(b"Username:"))
            password = self._b64(await self._sasl_step(b"Password:"))
        try:
            username, secret = user.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            raise CommandError("BAD", "credentials must be UTF-8") from None
        return await self.login(cmd.tag, username, secret)

    async def _sasl_step(self, challenge: bytes) -> bytes:
        if self.read_line is None:
            raise CommandError("NO", "continuations are not available")
        self.out.write(b"+ " + base64.b64encode(challenge) + b"\r\n")
        await self.out.drain()
        line = await self.read_line()
        if line is None:
            raise SessionClosed()
        if line.strip() == b"*":
            raise CommandError("BAD", "authentication cancelled")
        return line.strip()

    @staticmethod
    def _b64(raw: bytes) -> bytes:
        if raw == b"=":
            return b""
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise CommandError("BAD", "invalid base64") from None

    # -- authenticated ----------------------------------------------------------------------

    def _user_id(self) -> int:
        assert self.user is not None
        return self.user.id

    async def _select(self, cmd: c.Select | c.Examine) -> bytes:
        readonly = isinstance(cmd, c.Examine)
        # RFC 3501 §6.3.1: SELECT first deselects, even when it then fails.
        self._deselect()
        # Subscribe before reading the snapshot: a change committed after the read would
        # otherwise ring nobody and never be announced. Until the mailbox id is known, any
        # change to this user's mailboxes rings (a spurious ring costs one empty look).
        user_id = self._user_id()
        watched: list[int] = []

        def wanted(event: Event) -> bool:
            if isinstance(event, MailboxChanged):
                return event.mailbox_id == watched[0] if watched else event.user_id == user_id
            if (isinstance(event, MailboxesChanged) and event.user_id == user_id) or \
                    isinstance(event, ExternalChange):
                self._check_mailbox = True
                return True
            return False
        bell = self.services.bus.doorbell(wanted)
        try:
            snap = await self.store.snapshot(user_id, cmd.mailbox)
            watched.append(snap.mailbox.id)
            if readonly:
                # RFC 3501 §6.3.2: EXAMINE reports \Recent but never claims it, so a later
                # SELECT still gets the messages no session has been told of (as Dovecot does).
                recent: tuple[int | None, int | None] = (snap.recent_uid, None)
            else:
                # Only a write when some message is still unclaimed (RFC 3501 §2.3.2). The claim
                # may cover UIDs committed after the snapshot: they are recent here when they come.
                recent = (await self._claim_recent(snap.mailbox.id) if snap.unclaimed_recent
                          else (snap.mailbox.uidnext, None))
        except BaseException:
            self.services.bus.unsubscribe(bell)
            self._check_mailbox = False
            raise
        mailbox = snap.mailbox
        view = SelectedMailbox(mailbox, readonly=readonly)
        view.load_columns(snap.uids, snap.flags, snap.sizes, snap.dates, recent_from=recent[0],
                          recent_to=recent[1])
        lines = [
            b"* %d EXISTS\r\n" % view.exists,
            b"* %d RECENT\r\n" % view.count_recent(),
            _flag_lines(view),
        ]
        unseen = view.first_unseen()
        if unseen is not None:
            lines.append(b"* OK [UNSEEN %d] first unseen\r\n" % unseen)
        lines.append(b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % mailbox.uidvalidity)
        lines.append(b"* OK [UIDNEXT %d] predicted next UID\r\n" % mailbox.uidnext)
        self.out.write(b"".join(lines))
        self.selected = view
        self._bell = bell
        self.state = State.SELECTED
        if readonly:
            return _tagged(cmd.tag, "OK", "EXAMINE completed", "READ-ONLY")
        return _tagged(cmd.tag, "OK", "SELECT completed", "READ-WRITE")

    async def _create(self, cmd: c.Create) -> bytes:
        name = cmd.mailbox.rstrip("/")  # RFC 3501 §6.3.3: a trailing separator is intent
        if name == "INBOX":
            raise CommandError("NO", "INBOX always exists", "ALREADYEXISTS")
        await self.store.create_mailbox(self._user_id(), name)
        return _tagged(cmd.tag, "OK", "CREATE completed")

    async def _delete(self, cmd: c.Delete) -> bytes:
        view = self.selected
        own = False
        if view is not None:
            # By id, not name: the name may be spelt differently or renamed since SELECT.
            try:
                own = (await self.store.get_mailbox(self._user_id(), cmd.mailbox)).id == \
                    view.mailbox.id
            except NotFound:
                pass
        await self.store.delete_mailbox(self._user_id(), cmd.mailbox)
        if own:
            self._deselect()  # deleting one's own selected mailbox just leaves it
        return _tagged(cmd.tag, "OK", "DELETE completed")

    async def _rename(self, cmd: c.Rename) -> bytes:
        await self.store.rename_mailbox(self._user_id(), cmd.mailbox, cmd.new_name)
        return _tagged(cmd.tag, "OK", "RENAME completed")

    async def _subscribe(self, cmd: c.Subscribe | c.Unsubscribe) -> bytes:
        await self.store.set_subscribed(self._user_id(), cmd.mailbox, isinstance(cmd, c.Subscribe))
        return _tagged(cmd.tag, "OK", f"{type(cmd).__name__.upper()} completed")

    async def _list(self, cmd: c.List | c.Lsub) -> bytes:
        lsub = isinstance(cmd, c.Lsub)
        verb = b"LSUB" if lsub else b"LIST"
        if cmd.pattern == "" and not lsub:
            # RFC 3501 §6.3.8: the hierarchy delimiter and root name.
            self.out.write(b'* LIST (\\Noselect) "/" ""\r\n')
            return _tagged(cmd.tag, "OK", "LIST completed")
        pattern = _list_regex(c.normalize_mailbox(cmd.reference + cmd.pattern, pattern=True))
        user_id = self._user_id()
        boxes: list[Mailbox] = await self.store.list_mailboxes(user_id)
        noselect: list[str] = await self.store.list_noselect(user_id)
        names = {b.name for b in boxes} | set(noselect)
        parents = {n.rsplit("/", 1)[0] for n in names if "/" in n}
        entries: list[tuple[str, list[str]]] = []
        for box in boxes:
            if lsub and not box.subscribed:
                continue
            attrs = []
            if not lsub:
                attrs.append("\\HasChildren" if box.name in parents else "\\HasNoChildren")
            if box.special_use:
                attrs.append(box.special_use)
            entries.append((box.name, attrs))
        if lsub:
            entries += [(n, ["\\Noselect"]) for n in _lsub_hidden_parents(
                [name for name, _ in entries], pattern)]
        else:
            entries += [(n, ["\\Noselect", "\\HasChildren" if n in parents
                             else "\\HasNoChildren"]) for n in noselect]
        entries.sort(key=lambda e: (e[0] != "INBOX", e[0]))
        out = []
        for name, attrs in entries:
            if pattern.fullmatch(name):
                out.append(b"* %b (%b) \"/\" %b\r\n" % (verb, " ".join(attrs).encode(),
                                                      string(mutf7.encode(name))))
        self.out.write(b"".join(out))
        return _tagged(cmd.tag, "OK", f"{verb.decode()} completed")

    async def _status(self, cmd: c.Status) -> bytes:
        mailbox = await self.store.get_mailbox(self._user_id(), cmd.mailbox)
        st = await self.store.status(mailbox.id)
        values = {"MESSAGES": st.messages, "RECENT": st.recent, "UIDNEXT": st.uidnext,
                  "UIDVALIDITY": st.uidvalidity, "UNSEEN": st.unseen}
        items = " ".join(f"{item} {values[item]}" for item in cmd.items)
        self.out.write(b"* STATUS %b (%b)\r\n" % (string(mutf7.encode(mailbox.name)),
                                                 items.encode()))
        return _tagged(cmd.tag, "OK", "STATUS completed")

    async def _append(self, cmd: c.Append) -> bytes:
        try:
            mailbox = await self.store.get_mailbox(self._user_id(), cmd.mailbox)
        except NotFound:
            raise CommandError("NO", "no such mailbox", "TRYCREATE") from None
        assert self.user is not None
        if self.services.quotas is not None:
            await self.services.quotas.check(self.user, len(cmd.message))  # NO [OVERQUOTA]
        uid = await self.store.append(mailbox.id, cmd.message, cmd.flags, cmd.internal_date)
        self.services.bus.publish(MessageReceived("imap", self.user.address, 1, 0,
                                                  len(cmd.message)))
        if self.selected is not None and self.selected.mailbox.id == mailbox.id:
            # RFC 3501 §6.3.11: a selected mailbox hears of the new message right away.
            await self.sync(allow_expunge=True, force=True)
        return _tagged(cmd.tag, "OK", "APPEND completed",
                       f"APPENDUID {mailbox.uidvalidity} {uid}")

    async def _namespace(self, cmd: c.Namespace) -> bytes:
        self.out.write(b'* NAMESPACE (("" "/")) NIL NIL\r\n')
        return _tagged(cmd.tag, "OK", "NAMESPACE completed")

    async def _enable(self, cmd: c.Enable) -> bytes:
        # None of rmail's capabilities needs enabling (RFC 5161 §3.1: list only enabled ones).
        self.out.write(b"* ENABLED\r\n")
        return _tagged(cmd.tag, "OK", "ENABLE completed")

    async def _idle(self, cmd: c.Idle) -> bytes:
        """RFC 2177: push news until the client sends DONE."""
        if self.read_line is None:
            raise CommandError("NO", "IDLE is not available")
        self.out.write(b"+ idling\r\n")
        await self.sync(allow_expunge=True)
        await self.out.drain()
        line_task = asyncio.ensure_future(self.read_line())
        try:
            while True:
                waiters: set[asyncio.Future] = {line_task}
                bell_task = None
                if self._bell is not None:
                    bell_task = asyncio.ensure_future(self._bell.wait())
                    waiters.add(bell_task)
                done, _ = await asyncio.wait(waiters, timeout=self.services.autologout,
                                             return_when=asyncio.FIRST_COMPLETED)
                if bell_task is not None and not bell_task.done():
                    bell_task.cancel()
                if not done:
                    self.out.write(b"* BYE autologout; idle for too long\r\n")
                    await self.out.drain()
                    raise SessionClosed()
                if line_task in done:
                    break
                await self.sync(allow_expunge=True, force=True)
                await self.out.drain()
        finally:
            if not line_task.done():
                line_task.cancel()
        line = line_task.result()
        if line is None:
            raise SessionClosed()
        if line.strip().upper() != b"DONE":
            raise CommandError("BAD", "expected DONE")
        return _tagged(cmd.tag, "OK", "IDLE terminated")

    # -- selected ---------------------------------------------------------------------------

    async def _close(self, cmd: c.Close | c.Unselect) -> bytes:
        view = self._require_view()
        if isinstance(cmd, c.Close) and not view.readonly:
            # RFC 3501 §6.4.2: expunge silently, no EXPUNGE responses.
            await self.store.expunge(view.mailbox.id)
        self._deselect()
        return _tagged(cmd.tag, "OK", f"{type(cmd).__name__.upper()} completed")

    async def _expunge(self, cmd: c.Expunge | c.UidExpunge) -> bytes:
        view = self._require_writable()
        uids = None
        if isinstance(cmd, c.UidExpunge):
            ranges = cmd.seqset.resolve(view.max_uid)
            uids = [view.uids[i] for i in view.resolve(ranges, uid=True)]
            if not uids:
                return _tagged(cmd.tag, "OK", "EXPUNGE completed")
        removed = await self.store.expunge(view.mailbox.id, uids)
        seqs = view.expunge_now(removed)
        self.out.write(b"".join(b"* %d EXPUNGE\r\n" % s for s in seqs))
        return _tagged(cmd.tag, "OK", "EXPUNGE completed")

    def _indexes(self, seqset: c.SeqSet, uid: bool) -> list[int]:
        view = self._require_view()
        if not uid and view.exists == 0:
            raise InvalidSequence("the mailbox is empty")
        ranges = seqset.resolve(view.max_uid if uid else view.exists)
        return list(view.resolve(ranges, uid=uid))

    async def _search(self, cmd: c.Search) -> bytes:
        view = self._require_view()
        mailbox_id = view.mailbox.id
        assert self.user is not None

        async def load_info(uids: list[int]) -> dict[int, MessageInfo]:
            return await self.store.fetch_info(mailbox_id, uids)

        async def load_text(uids: list[int]) -> dict[int, str]:
            return await self.store.search_text(mailbox_id, uids)

        # One SEARCH per user at a time: a user's parallel sessions share one slot, so they
        # cannot multiply their share of the loop (the others wait their turn).
        async with self.services.scans.lock(self.user.id):
            # Work proportional to the mailbox: yield the loop every few milliseconds and stop
            # at the configured CPU budget with NO [LIMIT] (RFC 5530) rather than run for a
            # minute. Made only now, so the wait for the slot is not metered.
            slicer = Slicer(budget=self.services.search_budget, what="this SEARCH")
            hits = await search(cmd.key, view, slicer=slicer, load_info=load_info,
                                load_text=load_text)
        numbers = [view.uids[i] for i in hits] if cmd.uid else [i + 1 for i in hits]
        out = [b"* SEARCH"]
        writing = Slicer()  # the answer is found: writing it is not held to the budget
        for n in numbers:
            out.append(b" %d" % n)
            if writing.due():
                await writing.pause()
        out.append(b"\r\n")
        self.out.write(b"".join(out))
        return _tagged(cmd.tag, "OK", "SEARCH completed")

    async def _fetch(self, cmd: c.Fetch) -> bytes:
        view = self._require_view()
        indexes = self._indexes(cmd.seqset, cmd.uid)
        plan = FetchPlan(cmd.attributes)
        mailbox_id = view.mailbox.id
        slicer = Slicer()  # FETCH 1:* FLAGS on 100,000 messages needs no store read to yield
        seen_now: set[int] = set()
        if plan.sets_seen and not view.readonly:
            unseen = [view.uids[i] for i in indexes if "\\Seen" not in view.flags[i]]
            if unseen:
                metas = await self.store.store_flags(mailbox_id, unseen, "add", ["\\Seen"])
                view.set_flags(metas)
                seen_now = {m.uid for m in metas}
        if view.keywords_stale:
            self.out.write(_flag_lines(view))  # every flag sent below comes from the map
        for start in range(0, len(indexes), FETCH_BATCH):
            batch = indexes[start:start + FETCH_BATCH]
            uids = [view.uids[i] for i in batch]
            infos = await self.store.fetch_info(mailbox_id, uids) if plan.needs_info else {}
            blob_ids: dict[int, str] = {}
            if plan.needs_blob:
                blob_ids = {m.uid: m.blob_id for m in await self.store.get_meta(mailbox_id, uids)}
            out: list[bytes] = []
            for i, u in zip(batch, uids):
                data = None
                if plan.needs_info and u not in infos:
                    continue  # expunged by another session, not yet announced: no made-up data
                if plan.needs_blob:
                    blob_id = blob_ids.get(u)
                    if blob_id is None:
                        continue  # expunged by another session, not yet announced
                    try:
                        body = await self.store.open_message(blob_id)
                    except NotFound:
                        continue  # expunged by another session meanwhile
                    data = body.inline
                    if data is None:
                        # A large message the store does not hold in memory: stream it (or
                        # read it whole when a section needs the MIME tree).
                        self.out.write(b"".join(out))
                        out.clear()
                        data = await self._fetch_streamed(plan, view, i, u, body, infos.get(u),
                                                          force_flags=u in seen_now)
                        if data is None:
                            continue
                out.append(b"* %d FETCH " % (i + 1) + message_items(
                    plan, uid=u, flags=view.flags[i], recent=view.is_recent(u),
                    size=view.sizes[i], date=view.dates[i], info=infos.get(u), data=data,
                    force_flags=u in seen_now) + b"\r\n")
                if plan.needs_blob and len(out) >= 16:
                    self.out.write(b"".join(out))
                    out.clear()
                    await self.out.drain()
                if slicer.due():
                    await slicer.pause()
            self.out.write(b"".join(out))
            await self.out.drain()
        return _tagged(cmd.tag, "OK", "FETCH completed")

    async def _fetch_streamed(self, plan: FetchPlan, view: SelectedMailbox, i: int, uid: int,
                              body: MessageBody, info: MessageInfo | None, *,
                              force_flags: bool) -> bytes | None:
        """Send one large message's FETCH response, streaming its body literals; or return
        the whole message when the plan needs more than header and byte ranges. Returns None
        once the response is sent. Closes ``body``."""
        try:
            pieces = None
            if plan.streamable:
                head = await stream.head(body) if plan.needs_head else b""
                pieces = file_items(plan, uid=uid, flags=view.flags[i], recent=view.is_recent(uid),
                                    size=view.sizes[i], date=view.dates[i],
                                    info=info, file_size=body.size,
                                    head=head, force_flags=force_flags)
            if pieces is None:
                return await stream.read_all(body)
            self.out.write(b"* %d FETCH " % (i + 1))
            for piece in pieces:
                if isinstance(piece, FileRange):
                    await stream.send(body, self.out, piece.start, piece.length)
                else:
                    self.out.write(piece)
            self.out.write(b"\r\n")
            await self.out.drain()
            return None
        except StreamBroken:
            # The literal's length is on the wire already: the session cannot continue.
            log.error("imap: message of uid %d is shorter than its size", uid)
            raise SessionClosed() from None
        finally:
            await body.close()

    async def _store(self, cmd: c.Store) -> bytes:
        view = self._require_writable()
        indexes = self._indexes(cmd.seqset, cmd.uid)
        uids = [view.uids[i] for i in indexes]
        mode = {c.StoreMode.REPLACE: "set", c.StoreMode.ADD: "add",
                c.StoreMode.REMOVE: "remove"}[cmd.mode]
        metas = await self.store.store_flags(view.mailbox.id, uids, mode, cmd.flags)
        slicer = Slicer()  # STORE 1:* on a large mailbox: record and answer in slices
        changed: list[int] = []
        for start in range(0, len(metas), FETCH_BATCH):
            changed += view.set_flags(metas[start:start + FETCH_BATCH])
            await slicer.tick()
        if view.keywords_stale:
            # A keyword new to the mailbox: FLAGS grows first, even for .SILENT (a later
            # FETCH would show it), as Dovecot does (RFC 3501 §7.2.6).
            self.out.write(_flag_lines(view))
        if not cmd.silent:
            out = []
            for i in changed:
                u = view.uids[i]
                uid_part = b"UID %d " % u if cmd.uid else b""
                out.append(b"* %d FETCH (%bFLAGS %b)\r\n" % (
                    i + 1, uid_part, flags_bytes(view.flags[i], view.is_recent(u))))
                if slicer.due():
                    self.out.write(b"".join(out))
                    out.clear()
                    await slicer.pause()
            self.out.write(b"".join(out))
        return _tagged(cmd.tag, "OK", "STORE completed")

    async def _copy(self, cmd: c.Copy | c.Move) -> bytes:
        move = isinstance(cmd, c.Move)
        view = self._require_writable() if move else self._require_view()
        indexes = self._indexes(cmd.seqset, cmd.uid)
        uids = [view.uids[i] for i in indexes]
        try:
            dest = await self.store.get_mailbox(self._user_id(), cmd.mailbox)
        except NotFound:
            raise CommandError("NO", "no such mailbox", "TRYCREATE") from None
        verb = "MOVE" if move else "COPY"
        if not uids:
            return _tagged(cmd.tag, "OK", f"{verb} completed")
        if move:
            # MOVE between one's own mailboxes leaves usage as it was: never refused for quota.
            pairs = await self.store.move(view.mailbox.id, uids, dest.id)
        else:
            if self.services.quotas is not None:
                assert self.user is not None
                await self.services.quotas.check(self.user, sum(view.sizes[i] for i in indexes))
            pairs = await self.store.copy(view.mailbox.id, uids, dest.id)
        pairs.sort()
        code = (f"COPYUID {dest.uidvalidity} {_uid_set([p[0] for p in pairs])} "
                f"{_uid_set([p[1] for p in pairs])}") if pairs else None
        if not move:
            return _tagged(cmd.tag, "OK", "COPY completed", code)
        # RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGEs.
        if code:
            self.out.write(f"* OK [{code}] moved\r\n".encode())
        seqs = view.expunge_now(p[0] for p in pairs)
        self.out.write(b"".join(b"* %d EXPUNGE\r\n" % s for s in seqs))
        return _tagged(cmd.tag, "OK", "MOVE completed")
