"""An in-memory MailBackend for Pilot tests: real message bytes, real parsing, no sockets.

It keeps IMAP semantics that the UI relies on: ascending UIDs that are never reused per
folder, special-use attributes, \\Seen handling, MOVE removing from the source.
"""

from __future__ import annotations

import email.policy
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.parser import BytesParser

from rmail.client.backend import AuthenticationFailed, ConnectionLost, MailError, ServerRefused
from rmail.client.folders import sort_folders
from rmail.client.imapwire import message_ids
from rmail.client.mime import parse_message
from rmail.client.model import AccountSettings, Address, Folder, MessageSummary, SearchQuery
from rmail.client.search import matches


@dataclass
class FakeFolder:
    special_use: str = ""
    messages: dict[int, tuple[bytes, set[str]]] = field(default_factory=dict)
    uidnext: int = 1


class FakeServer:
    """Shared state, so several backends (logins) see the same mailboxes."""

    def __init__(self, user: str = "alice@example.com", password: str = "secret") -> None:
        self.user, self.password = user, password
        self.folders: dict[str, FakeFolder] = {
            "INBOX": FakeFolder(),
            "Drafts": FakeFolder("\\Drafts"),
            "Sent": FakeFolder("\\Sent"),
            "Trash": FakeFolder("\\Trash"),
            "Archive": FakeFolder("\\Archive"),
            "Work": FakeFolder(),
        }
        self.sent: list[tuple[str, list[str], bytes]] = []
        self.changed = threading.Condition()
        self.version = 0
        self.down = False  # simulate "server gone"
        self.fail_send: str = ""

    def deliver(self, folder: str, raw: bytes, flags: Sequence[str] = ()) -> int:
        with self.changed:
            f = self.folders[folder]
            uid = f.uidnext
            f.uidnext += 1
            f.messages[uid] = (raw, set(flags))
            self.version += 1
            self.changed.notify_all()
            return uid

    def factory(self, settings: AccountSettings, password: str) -> FakeBackend:
        return FakeBackend(self, settings, password)


def _summary(uid: int, raw: bytes, flags: set[str]) -> MessageSummary:
    m = parse_message(raw)
    headers = BytesParser(policy=email.policy.default).parsebytes(raw, headersonly=True)
    refs = message_ids(str(headers.get("References", "")))
    return MessageSummary(
        uid=uid,
        flags=frozenset(flags),
        size=len(raw),
        date=m.date,
        subject=m.subject,
        sender=m.sender,
        to=m.to,
        cc=m.cc,
        message_id=m.message_id,
        in_reply_to=m.in_reply_to,
        references=refs,
        timestamp=float(uid),
    )


class FakeBackend:
    def __init__(self, server: FakeServer, settings: AccountSettings, password: str) -> None:
        self.server = server
        self.settings = settings
        self.password = password
        self.connected = False
        self.calls: list[str] = []

    def _check(self) -> None:
        if self.server.down:
            self.connected = False
            raise ConnectionLost(f"connection to {self.settings.server} lost: server gone")
        if not self.connected:
            self.connect()

    def _folder(self, name: str) -> FakeFolder:
        self._check()
        try:
            return self.server.folders[name]
        except KeyError:
            raise ServerRefused(f"no such folder {name}") from None

    def connect(self) -> None:
        if self.server.down:
            raise ConnectionLost("cannot reach IMAP server: connection refused")
        if self.settings.user != self.server.user or self.password != self.server.password:
            raise AuthenticationFailed(f"login failed for {self.settings.user}: [AUTHENTICATIONFAILED] invalid credentials")
        self.connected = True

    def close(self) -> None:
        self.connected = False

    def list_folders(self) -> list[Folder]:
        self._check()
        with self.server.changed:
            return sort_folders(
                Folder(name, "/", f.special_use, len(f.messages), sum(1 for _, fl in f.messages.values() if "\\Seen" not in fl))
                for name, f in self.server.folders.items()
            )

    def folder_uids(self, folder: str) -> list[int]:
        with self.server.changed:
            return sorted(self._folder(folder).messages)

    def fetch_summaries(self, folder: str, uids: Sequence[int]) -> list[MessageSummary]:
        self.calls.append(f"fetch_summaries {len(uids)}")
        f = self._folder(folder)
        with self.server.changed:
            return [_summary(u, *f.messages[u]) for u in uids if u in f.messages]

    def fetch_message(self, folder: str, uid: int) -> bytes:
        f = self._folder(folder)
        if uid not in f.messages:
            raise ServerRefused("the message no longer exists")
        return f.messages[uid][0]

    def search(self, folder: str, query: SearchQuery) -> list[int]:
        f = self._folder(folder)
        out = []
        for uid, (raw, _flags) in f.messages.items():
            m = parse_message(raw)
            fields = {
                "from": " ".join(str(a) for a in m.sender),
                "to": " ".join(str(a) for a in m.to),
                "cc": " ".join(str(a) for a in m.cc),
                "subject": m.subject,
                "body": m.text,
            }
            if matches(query, fields):
                out.append(uid)
        return sorted(out)

    def store_flags(self, folder: str, uids: Sequence[int], flags: Sequence[str], add: bool) -> None:
        f = self._folder(folder)
        with self.server.changed:
            for u in uids:
                if u in f.messages:
                    (f.messages[u][1].update if add else f.messages[u][1].difference_update)(flags)
            self.server.version += 1
            self.server.changed.notify_all()

    def copy(self, folder: str, uids: Sequence[int], dest: str) -> None:
        src, dst = self._folder(folder), self._folder(dest)
        for u in uids:
            if u in src.messages:
                raw, flags = src.messages[u]
                self.server.deliver(dest, raw, sorted(flags))
        del dst

    def move(self, folder: str, uids: Sequence[int], dest: str) -> None:
        self.copy(folder, uids, dest)
        self.expunge(folder, uids)

    def expunge(self, folder: str, uids: Sequence[int]) -> None:
        f = self._folder(folder)
        with self.server.changed:
            for u in uids:
                f.messages.pop(u, None)
            self.server.version += 1
            self.server.changed.notify_all()

    def append(self, folder: str, raw: bytes, flags: Sequence[str] = ()) -> None:
        self._folder(folder)
        self.server.deliver(folder, raw, flags)

    def create_folder(self, name: str) -> None:
        self._check()
        if name in self.server.folders:
            raise ServerRefused(f"{name} already exists")
        self.server.folders[name] = FakeFolder()

    def send(self, sender: str, recipients: Sequence[str], raw: bytes) -> None:
        self._check()
        if self.server.fail_send:
            raise MailError(self.server.fail_send)
        self.server.sent.append((sender, list(recipients), raw))

    def idle(self, folder: str, stop: Callable[[], bool], max_wait: float) -> bool:
        self._check()
        deadline = time.monotonic() + max_wait
        with self.server.changed:
            start = self.server.version
            while not stop() and time.monotonic() < deadline:
                self.server.changed.wait(0.05)
                if self.server.version != start:
                    return True
        return False


def make_message(
    subject: str,
    *,
    sender: str = "Bob <bob@example.com>",
    to: str = "alice@example.com",
    cc: str = "",
    body: str = "Hello Alice.\n",
    message_id: str = "",
    in_reply_to: str = "",
    references: str = "",
    date: str = "Mon, 03 Feb 2025 10:00:00 +0000",
    html: str = "",
    attachment: tuple[str, bytes] | None = None,
) -> bytes:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = date
    msg["Message-ID"] = message_id or f"<{hashlib.sha1((subject + body).encode()).hexdigest()[:16]}@example.com>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    if html:
        msg.set_content(html, subtype="html")
    else:
        msg.set_content(body)
    if attachment:
        msg.add_attachment(attachment[1], maintype="application", subtype="octet-stream", filename=attachment[0])
    return msg.as_bytes(policy=email.policy.SMTP)


def addresses(*emails: str) -> tuple[Address, ...]:
    return tuple(Address("", e) for e in emails)
