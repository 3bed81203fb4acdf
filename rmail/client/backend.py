"""The mail backend: a blocking interface the app calls from thread workers, and its
implementation over stdlib imaplib (IMAP4rev1, RFC 3501) and smtplib (submission, RFC 6409).

Hook contract: every ``MailBackend`` method may block and must be called from a worker thread,
never from the Textual event loop. Methods raise only ``MailError`` subclasses (and
``ValueError`` for arguments the caller should have validated). ``idle`` uses its own
connection, so it may run concurrently with the other methods; the rest serialise on one lock.
"""

from __future__ import annotations

import imaplib
import re
import select
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from rmail.client.folders import sort_folders, special_use
from rmail.client.imapwire import (
    ParseError,
    join_responses,
    mailbox_arg,
    parse_fetch,
    parse_list,
    parse_status,
    parse_uids,
    quote,
    summary_from_fetch,
    uid_set,
)
from rmail.client.model import AccountSettings, Folder, MessageSummary, SearchQuery, Security
from rmail.client.search import FIELDS
from rmail.client.tlstrust import UntrustedCertificate, check_pin, context_for, fingerprint_of, probe_context

__all__ = [
    "AuthenticationFailed",
    "ConnectionLost",
    "ImapSmtpBackend",
    "MailBackend",
    "MailError",
    "SendFailed",
    "ServerRefused",
    "UntrustedCertificate",
]

T = TypeVar("T")

#: UID FETCH items for the message list (RFC 3501 §6.4.5); the header fields give threading
#: data that ENVELOPE lacks (References).
SUMMARY_ITEMS = "(UID FLAGS RFC822.SIZE ENVELOPE BODY.PEEK[HEADER.FIELDS (REFERENCES IN-REPLY-TO)])"
#: RFC 2177 §3: clients should re-issue IDLE at least every 29 minutes.
IDLE_RENEW_SECONDS = 25 * 60
#: How often an IDLE wait looks at its stop flag.
IDLE_POLL_SECONDS = 0.5
_IDLE_CHANGE = re.compile(rb"^\* (\d+ (EXISTS|EXPUNGE|FETCH)|BYE)", re.IGNORECASE)


class MailError(Exception):
    """A problem to show the user; ``str()`` is a readable sentence."""


class AuthenticationFailed(MailError):
    """The server rejected the user name or password."""


class ConnectionLost(MailError):
    """The server is unreachable or the connection dropped; retrying later may work."""


class ServerRefused(MailError):
    """The server answered NO/BAD to a command (e.g. the message or folder is gone)."""


class SendFailed(MailError):
    """SMTP submission failed (recipient refused, message too large, …)."""


class MailBackend(Protocol):
    """What the app needs from a mail account. All methods block; call from threads."""

    settings: AccountSettings

    def connect(self) -> None:
        """Open the IMAP session and log in.

        Raises:
            AuthenticationFailed, ConnectionLost, UntrustedCertificate, MailError
        """

    def close(self) -> None:
        """Log out of every connection; never raises."""

    def list_folders(self) -> list[Folder]:
        """All mailboxes with total/unseen counts, INBOX and special-use first."""

    def folder_uids(self, folder: str) -> list[int]:
        """UIDs of every message in ``folder``, ascending."""

    def fetch_summaries(self, folder: str, uids: Sequence[int]) -> list[MessageSummary]:
        """Summaries for ``uids`` (in the given order; vanished UIDs are left out)."""

    def fetch_message(self, folder: str, uid: int) -> bytes:
        """The raw message, without setting \\Seen."""

    def search(self, folder: str, query: SearchQuery) -> list[int]:
        """UIDs matching every term of ``query``, ascending (server-side SEARCH)."""

    def store_flags(self, folder: str, uids: Sequence[int], flags: Sequence[str], add: bool) -> None:
        """Add or remove system flags/keywords."""

    def copy(self, folder: str, uids: Sequence[int], dest: str) -> None:
        """Copy messages to ``dest``."""

    def move(self, folder: str, uids: Sequence[int], dest: str) -> None:
        """Move messages to ``dest`` (MOVE, else COPY + \\Deleted + EXPUNGE)."""

    def expunge(self, folder: str, uids: Sequence[int]) -> None:
        """Delete messages permanently."""

    def append(self, folder: str, raw: bytes, flags: Sequence[str] = ()) -> None:
        """Store a message in ``folder`` (Sent, Drafts)."""

    def create_folder(self, name: str) -> None:
        """Create a mailbox."""

    def send(self, sender: str, recipients: Sequence[str], raw: bytes) -> None:
        """Submit a message over SMTP.

        Raises:
            SendFailed, AuthenticationFailed, ConnectionLost, UntrustedCertificate
        """

    def idle(self, folder: str, stop: Callable[[], bool], max_wait: float) -> bool:
        """Wait until ``folder`` changes (True), ``stop()`` is true or ``max_wait`` passes (False)."""


def _unreachable(protocol: str, host: str, port: int, exc: BaseException) -> str:
    """Why a connection failed, in words rather than an errno."""
    if isinstance(exc, ConnectionRefusedError):
        why = ("nothing is listening there. Is rmail running? A local rmail started by a user "
               "other than root listens on the standard ports plus 10000 (143 → 10143)")
    elif isinstance(exc, (socket.timeout, TimeoutError)):
        why = "no answer in time (a firewall, or the wrong host)"
    elif isinstance(exc, socket.gaierror):
        why = "no such host name"
    else:
        why = _message(exc)
    return f"cannot reach the {protocol} server {host}:{port}: {why}"


def _message(exc: BaseException) -> str:
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text).strip() or type(exc).__name__


class ImapSmtpBackend:
    """``MailBackend`` over imaplib/smtplib with reconnect-on-failure."""

    def __init__(self, settings: AccountSettings, password: str) -> None:
        self.settings = settings
        self._password = password
        self._lock = threading.RLock()
        self._imap: imaplib.IMAP4 | None = None
        self._selected: str | None = None
        self._caps: frozenset[str] = frozenset()
        self._idle_lock = threading.Lock()
        self._idle_imap: imaplib.IMAP4 | None = None
        self._idle_folder: str | None = None
        self._idle_tags = 0

    # -- connections ---------------------------------------------------------------------
    def _open_imap(self, ctx: ssl.SSLContext) -> imaplib.IMAP4:
        s = self.settings
        try:
            if s.security is Security.TLS:
                imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(s.server, s.imap_port, ssl_context=ctx, timeout=s.timeout)
            else:
                imap = imaplib.IMAP4(s.server, s.imap_port, timeout=s.timeout)
                if s.security is Security.STARTTLS:
                    if "STARTTLS" not in imap.capabilities:
                        imap.shutdown()
                        raise MailError(f"{s.server} does not offer STARTTLS on port {s.imap_port}")
                    imap.starttls(ssl_context=ctx)  # RFC 3501 §6.2.1
        except (imaplib.IMAP4.error, OSError) as exc:
            if isinstance(exc, ssl.SSLCertVerificationError):
                raise
            raise ConnectionLost(_unreachable("IMAP", s.server, s.imap_port, exc)) from exc
        return imap

    def _tls_imap(self) -> imaplib.IMAP4:
        s = self.settings
        try:
            imap = self._open_imap(context_for(s))
        except ssl.SSLCertVerificationError as exc:
            probe = self._open_imap(probe_context())
            der = probe.socket().getpeercert(binary_form=True) if isinstance(probe.socket(), ssl.SSLSocket) else b""  # type: ignore[union-attr]
            self._quiet_logout(probe)
            raise UntrustedCertificate(fingerprint_of(der or b""), reason=exc.verify_message or "") from exc
        sock = imap.socket()
        if isinstance(sock, ssl.SSLSocket):
            try:
                check_pin(sock, s)
            except UntrustedCertificate:
                self._quiet_logout(imap)
                raise
        return imap

    def _login(self, imap: imaplib.IMAP4) -> None:
        s = self.settings
        caps = {str(c).upper() for c in imap.capabilities}
        if "LOGINDISABLED" in caps:
            self._quiet_logout(imap)
            raise MailError("the server allows login only after STARTTLS: use --security starttls")
        try:
            if "AUTH=PLAIN" in caps:
                # RFC 4616 carries UTF-8, unlike LOGIN through imaplib (ASCII only).
                token = f"\0{s.user}\0{self._password}".encode()
                imap.authenticate("PLAIN", lambda _challenge: token)
            else:
                imap.login(quote(s.user), self._password)
        except imaplib.IMAP4.abort as exc:
            raise ConnectionLost(f"connection dropped during login: {_message(exc)}") from exc
        except (imaplib.IMAP4.error, UnicodeEncodeError, ValueError) as exc:
            self._quiet_logout(imap)
            raise AuthenticationFailed(f"login failed for {s.user}: {_message(exc)}") from exc
        except OSError as exc:
            raise ConnectionLost(f"connection dropped during login: {_message(exc)}") from exc

    def _new_session(self) -> imaplib.IMAP4:
        imap = self._tls_imap()
        self._login(imap)
        return imap

    @staticmethod
    def _quiet_logout(imap: imaplib.IMAP4 | None) -> None:
        if imap is None:
            return
        try:
            imap.logout()
        except (imaplib.IMAP4.error, OSError, ValueError):
            try:
                imap.shutdown()
            except OSError:
                pass

    def connect(self) -> None:
        with self._lock:
            self._quiet_logout(self._imap)
            self._imap = None
            self._selected = None
            imap = self._new_session()
            self._imap = imap
            try:
                typ, data = imap.capability()
                if typ == "OK" and data and data[0]:
                    self._caps = frozenset(t.upper() for t in data[0].decode("ascii", "replace").split())
                else:
                    self._caps = frozenset(str(c).upper() for c in imap.capabilities)
            except (imaplib.IMAP4.error, OSError):
                self._caps = frozenset(str(c).upper() for c in imap.capabilities)

    def close(self) -> None:
        with self._lock:
            self._quiet_logout(self._imap)
            self._imap = None
            self._selected = None
        self._close_idle()

    def _close_idle(self) -> None:
        imap, self._idle_imap, self._idle_folder = self._idle_imap, None, None
        if imap is not None:
            try:
                imap.shutdown()
            except OSError:
                pass

    def _run(self, op: Callable[[imaplib.IMAP4], T]) -> T:
        """Run ``op`` on the session, reconnecting once if the connection had dropped."""
        with self._lock:
            for attempt in (1, 2):
                if self._imap is None:
                    self.connect()
                imap = self._imap
                assert imap is not None
                # Unsolicited EXISTS/EXPUNGE/RECENT lists would otherwise grow for ever.
                for key in ("EXISTS", "EXPUNGE", "RECENT"):
                    imap.untagged_responses.pop(key, None)
                try:
                    return op(imap)
                except imaplib.IMAP4.abort as exc:
                    failure: Exception = exc
                except imaplib.IMAP4.error as exc:
                    raise ServerRefused(_message(exc)) from exc
                except (OSError, EOFError) as exc:
                    failure = exc
                except ParseError as exc:
                    raise ServerRefused(f"unreadable server response: {exc}") from exc
                self._quiet_logout(self._imap)
                self._imap, self._selected = None, None
                if attempt == 2:
                    raise ConnectionLost(f"connection to {self.settings.server} lost: {_message(failure)}")
        raise AssertionError("unreachable")

    @staticmethod
    def _ok(typ: str, data: list, what: str) -> list:
        if typ != "OK":
            detail = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
            raise ServerRefused(f"{what} failed: {detail or typ}")
        return data

    def _select(self, imap: imaplib.IMAP4, folder: str) -> None:
        if self._selected == folder:
            return
        self._selected = None
        typ, data = imap.select(mailbox_arg(folder))
        self._ok(typ, data, f"opening {folder}")
        self._selected = folder

    # -- folders -------------------------------------------------------------------------
    def list_folders(self) -> list[Folder]:
        def op(imap: imaplib.IMAP4) -> list[Folder]:
            typ, data = imap.list('""', "*")
            folders: list[Folder] = []
            for line in join_responses(self._ok(typ, data, "listing folders")):
                flags, delim, name = parse_list(line)
                lowered = {f.lower() for f in flags}
                selectable = not ({"\\noselect", "\\nonexistent"} & lowered)
                total = unseen = 0
                if selectable:
                    typ, sdata = imap.status(mailbox_arg(name), "(MESSAGES UNSEEN)")
                    if typ == "OK":
                        rows = [r for r in join_responses(sdata) if r]
                        counts = parse_status(rows[0]) if rows else {}
                        total, unseen = counts.get("MESSAGES", 0), counts.get("UNSEEN", 0)
                folders.append(Folder(name, delim, special_use(flags, name, delim), total, unseen, selectable))
            return sort_folders(folders)

        return self._run(op)

    def create_folder(self, name: str) -> None:
        def op(imap: imaplib.IMAP4) -> None:
            typ, data = imap.create(mailbox_arg(name))
            self._ok(typ, data, f"creating {name}")

        self._run(op)

    # -- messages ------------------------------------------------------------------------
    def folder_uids(self, folder: str) -> list[int]:
        def op(imap: imaplib.IMAP4) -> list[int]:
            if self._selected == folder:
                # A server may hold back new messages until a command lets it announce them
                # (RFC 3501 §5.2); NOOP is that poll (§6.1.2).
                imap.noop()
            self._select(imap, folder)
            typ, data = imap.uid("SEARCH", "ALL")
            return parse_uids(self._ok(typ, data, "listing messages"))

        return self._run(op)

    def fetch_summaries(self, folder: str, uids: Sequence[int]) -> list[MessageSummary]:
        if not uids:
            return []

        def op(imap: imaplib.IMAP4) -> list[MessageSummary]:
            self._select(imap, folder)
            typ, data = imap.uid("FETCH", uid_set(uids), SUMMARY_ITEMS)
            found: dict[int, MessageSummary] = {}
            for response in join_responses(self._ok(typ, data, "fetching headers")):
                summary = summary_from_fetch(parse_fetch(response)[1])
                if summary is not None:
                    found[summary.uid] = summary
            return [found[u] for u in uids if u in found]

        return self._run(op)

    def fetch_message(self, folder: str, uid: int) -> bytes:
        def op(imap: imaplib.IMAP4) -> bytes:
            self._select(imap, folder)
            typ, data = imap.uid("FETCH", str(uid), "(UID BODY.PEEK[])")
            for response in join_responses(self._ok(typ, data, "fetching the message")):
                items = parse_fetch(response)[1]
                body = items.get("BODY[]")
                if items.get("UID") == str(uid) and isinstance(body, (bytes, str)):
                    return body if isinstance(body, bytes) else body.encode()
            raise ServerRefused("the message no longer exists")

        return self._run(op)

    def search(self, folder: str, query: SearchQuery) -> list[int]:
        plain = [(k, v) for k, v in query.terms if v.isascii()]
        wide = [(k, v) for k, v in query.terms if not v.isascii()]
        if len(wide) > 1:
            raise ValueError("only one search term may contain non-ASCII characters")
        args: list[str] = []
        for key, value in plain:
            args += [FIELDS[key], quote(value)]

        def op(imap: imaplib.IMAP4) -> list[int]:
            self._select(imap, folder)
            if wide:
                # imaplib sends one trailing literal: the non-ASCII term goes last (RFC 3501 §6.4.4).
                imap.literal = wide[0][1].encode()  # type: ignore[attr-defined]
                typ, data = imap.uid("SEARCH", "CHARSET", "UTF-8", *args, FIELDS[wide[0][0]])
            else:
                typ, data = imap.uid("SEARCH", *args)
            return parse_uids(self._ok(typ, data, "searching"))

        return self._run(op)

    def store_flags(self, folder: str, uids: Sequence[int], flags: Sequence[str], add: bool) -> None:
        def op(imap: imaplib.IMAP4) -> None:
            self._select(imap, folder)
            mode = "+FLAGS.SILENT" if add else "-FLAGS.SILENT"
            typ, data = imap.uid("STORE", uid_set(uids), mode, "(" + " ".join(flags) + ")")
            self._ok(typ, data, "changing flags")

        self._run(op)

    def copy(self, folder: str, uids: Sequence[int], dest: str) -> None:
        def op(imap: imaplib.IMAP4) -> None:
            self._select(imap, folder)
            typ, data = imap.uid("COPY", uid_set(uids), mailbox_arg(dest))
            self._ok(typ, data, f"copying to {dest}")

        self._run(op)

    def move(self, folder: str, uids: Sequence[int], dest: str) -> None:
        def op(imap: imaplib.IMAP4) -> None:
            self._select(imap, folder)
            if "MOVE" in self._caps:  # RFC 6851
                typ, data = imap.uid("MOVE", uid_set(uids), mailbox_arg(dest))
                self._ok(typ, data, f"moving to {dest}")
                return
            typ, data = imap.uid("COPY", uid_set(uids), mailbox_arg(dest))
            self._ok(typ, data, f"copying to {dest}")
            self._expunge(imap, uids)

        self._run(op)

    def _expunge(self, imap: imaplib.IMAP4, uids: Sequence[int]) -> None:
        typ, data = imap.uid("STORE", uid_set(uids), "+FLAGS.SILENT", "(\\Deleted)")
        self._ok(typ, data, "marking deleted")
        if "UIDPLUS" in self._caps:  # RFC 4315 §2.1: expunge only these UIDs
            typ, data = imap.uid("EXPUNGE", uid_set(uids))
        else:
            typ, data = imap.expunge()
        self._ok(typ, data, "expunging")

    def expunge(self, folder: str, uids: Sequence[int]) -> None:
        def op(imap: imaplib.IMAP4) -> None:
            self._select(imap, folder)
            self._expunge(imap, uids)

        self._run(op)

    def append(self, folder: str, raw: bytes, flags: Sequence[str] = ()) -> None:
        def op(imap: imaplib.IMAP4) -> None:
            typ, data = imap.append(mailbox_arg(folder), "(" + " ".join(flags) + ")" if flags else None, None, raw)
            self._ok(typ, data, f"saving to {folder}")

        self._run(op)

    # -- IDLE (RFC 2177) -----------------------------------------------------------------
    def idle(self, folder: str, stop: Callable[[], bool], max_wait: float) -> bool:
        with self._idle_lock:
            try:
                return self._idle(folder, stop, min(max_wait, IDLE_RENEW_SECONDS))
            except (imaplib.IMAP4.error, OSError, EOFError) as exc:
                self._close_idle()
                raise ConnectionLost(f"IDLE connection lost: {_message(exc)}") from exc

    def _idle(self, folder: str, stop: Callable[[], bool], max_wait: float) -> bool:
        if self._idle_imap is None:
            self._idle_imap = self._new_session()
            self._idle_folder = None
        imap = self._idle_imap
        if self._idle_folder != folder:
            typ, data = imap.select(mailbox_arg(folder), readonly=True)
            self._ok(typ, data, f"watching {folder}")
            self._idle_folder = folder
        deadline = time.monotonic() + max_wait
        if "IDLE" not in {str(c).upper() for c in imap.capabilities}:
            return self._poll(imap, stop, deadline)
        self._idle_tags += 1
        tag = b"RMIDLE%d" % self._idle_tags
        imap.send(tag + b" IDLE\r\n")
        first = imap.readline()
        if not first.startswith(b"+"):
            if not first:
                raise EOFError("server closed the connection")
            return self._poll(imap, stop, deadline)
        changed = False
        sock = imap.socket()
        while not changed and not stop() and time.monotonic() < deadline:
            ready = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
            if not ready:
                ready = bool(select.select([sock], [], [], IDLE_POLL_SECONDS)[0])
            if not ready:
                continue
            line = imap.readline()
            if not line:
                raise EOFError("server closed the connection")
            m = _IDLE_CHANGE.match(line)
            if m and m.group(0).upper().endswith(b"BYE"):
                raise EOFError("server said BYE")
            changed = bool(m)
        imap.send(b"DONE\r\n")
        while True:  # drain until the tagged completion of IDLE
            line = imap.readline()
            if not line:
                raise EOFError("server closed the connection")
            if _IDLE_CHANGE.match(line):
                changed = True
            if line.startswith(tag + b" "):
                return changed

    def _poll(self, imap: imaplib.IMAP4, stop: Callable[[], bool], deadline: float) -> bool:
        """Without IDLE: NOOP every few seconds and report EXISTS/EXPUNGE/FETCH."""
        next_noop = 0.0
        while not stop() and time.monotonic() < deadline:
            if time.monotonic() >= next_noop:
                imap.noop()
                if any(imap.untagged_responses.pop(k, None) for k in ("EXISTS", "EXPUNGE", "FETCH")):
                    return True
                next_noop = time.monotonic() + 10
            time.sleep(IDLE_POLL_SECONDS)
        return False

    # -- SMTP submission (RFC 6409) ------------------------------------------------------
    def _open_smtp(self, ctx: ssl.SSLContext) -> smtplib.SMTP:
        s = self.settings
        if s.security is Security.TLS:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.server, s.smtp_port, timeout=s.timeout, context=ctx)
        else:
            smtp = smtplib.SMTP(s.server, s.smtp_port, timeout=s.timeout)
        try:
            smtp.ehlo()
            if s.security is Security.STARTTLS:
                if not smtp.has_extn("starttls"):
                    raise SendFailed(f"{s.server} does not offer STARTTLS on port {s.smtp_port}")
                smtp.starttls(context=ctx)  # RFC 3207
                smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _smtp_session(self) -> smtplib.SMTP:
        s = self.settings
        try:
            smtp = self._open_smtp(context_for(s))
        except ssl.SSLCertVerificationError as exc:
            probe = self._open_smtp(probe_context())
            sock = probe.sock
            der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else b""
            probe.close()
            raise UntrustedCertificate(fingerprint_of(der or b""), reason=exc.verify_message or "") from exc
        if isinstance(smtp.sock, ssl.SSLSocket):
            try:
                check_pin(smtp.sock, s)
            except UntrustedCertificate:
                smtp.close()
                raise
        return smtp

    def send(self, sender: str, recipients: Sequence[str], raw: bytes) -> None:
        s = self.settings
        if not recipients:
            raise SendFailed("no recipients")
        try:
            smtp = self._smtp_session()
        except (smtplib.SMTPException, OSError) as exc:
            if isinstance(exc, ssl.SSLCertVerificationError):
                raise
            raise ConnectionLost(_unreachable("SMTP", s.server, s.smtp_port, exc)) from exc
        try:
            if smtp.has_extn("auth"):
                try:
                    smtp.login(s.user, self._password)
                except (smtplib.SMTPAuthenticationError, UnicodeEncodeError) as exc:
                    raise AuthenticationFailed(f"SMTP login failed for {s.user}: {_message(exc)}") from exc
            refused = smtp.sendmail(sender, list(recipients), raw)
            if refused:
                who = ", ".join(f"{r} ({c} {_message(ValueError(m))})" for r, (c, m) in refused.items())
                raise SendFailed(f"sent, but these recipients were refused: {who}")
        except smtplib.SMTPRecipientsRefused as exc:
            who = ", ".join(f"{r} ({c} {_message(ValueError(m))})" for r, (c, m) in exc.recipients.items())
            raise SendFailed(f"recipients refused: {who}") from exc
        except smtplib.SMTPResponseException as exc:
            raise SendFailed(f"the server refused the message: {exc.smtp_code} {_message(ValueError(exc.smtp_error))}") from exc
        except smtplib.SMTPException as exc:
            raise SendFailed(f"sending failed: {_message(exc)}") from exc
        except (OSError, socket.timeout) as exc:
            raise ConnectionLost(f"connection to {s.server}:{s.smtp_port} lost while sending: {_message(exc)}") from exc
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
