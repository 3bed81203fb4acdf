"""Moving a user's mail in (Maildir++, mbox) and out (Maildir++, mboxrd).

A re-run imports nothing twice: every imported message records its source identity
(``MailStore.deliver(..., imported=...)``) in the same transaction as the message itself, so a
crash or ^C never leaves a message without its record or the reverse. The identity comes from the source, not
from the message: for Maildir the target mailbox plus the file's unique base name (stable when
a client changes flags or moves it from new/ to cur/); for mbox the target mailbox plus the
message's SHA-256 and its occurrence number among equal messages of that file. Message-ID,
size and date were the alternative and were rejected: drafts and much automated mail lack a
Message-ID, and two distinct copies of one message (sent to yourself, a list's copy) share all
three, so one of them would be dropped. A message imported once and later deleted in rmail is
not brought back by a second run either: the record stays.

Imported messages do not count as \\Recent: they are old mail, and a client should not
announce a thousand "new" messages after a migration.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .errors import InvalidInput, NotFound
from .mailformats import (KEYWORD_LETTERS, folder_to_mailbox, format_keywords_file, mailbox_to_folder,
                          maildir_flags, maildir_info, parse_keywords_file, read_mbox, split_maildir_name, to_crlf,
                          write_mbox_message)
from .model import Account, Mailbox
from .progress import Progress, no_progress
from .storage.flags import MAX_KEYWORDS, flags_to_columns
from .storage.mail import Import, MailStore
from .storage.names import normalize_mailbox_name



@dataclass
class ImportResult:
    imported: int = 0
    already: int = 0
    mailboxes: set[str] = field(default_factory=set)

    def summary(self) -> str:
        return (f"imported {self.imported} messages into {len(self.mailboxes)} mailboxes"
                f" ({self.already} already there)")


@dataclass
class ExportResult:
    messages: int = 0
    mailboxes: int = 0
    dropped_keywords: int = 0

    def summary(self) -> str:
        text = f"exported {self.messages} messages from {self.mailboxes} mailboxes"
        if self.dropped_keywords:
            text += (f"; {self.dropped_keywords} keyword(s) had no Maildir letter left"
                     f" (at most {len(KEYWORD_LETTERS)} per folder) and were not written")
        return text


class Importer:
    """Adds messages of one source kind to one user's mailboxes, each at most once."""

    def __init__(self, store: MailStore, account: Account, source: str, progress: Progress | None = None) -> None:
        self.store = store
        self.account = account
        self.source = source
        self.progress = progress or no_progress
        #: Units of work done and in all (files of a Maildir, bytes of an mbox), when known.
        self.done = 0
        self.total: int | None = None
        self.result = ImportResult()
        self._known: set[str] | None = None
        self._boxes: dict[str, Mailbox] = {}

    async def _load_known(self) -> set[str]:
        if self._known is None:
            self._known = await self.store.imported_keys(self.account.id, self.source)
        return self._known

    async def mailbox(self, name: str) -> Mailbox:
        name = normalize_mailbox_name(name)
        box = self._boxes.get(name)
        if box is None:
            try:
                box = await self.store.get_mailbox(self.account.id, name)
            except NotFound:
                box = await self.store.create_mailbox(self.account.id, name)
                # CREATE does not subscribe (RFC 3501 §6.3.6); an imported folder should show
                # in clients that list only subscribed folders, as it did in its old home.
                await self.store.set_subscribed(self.account.id, name, True)
            self._boxes[name] = box
        return box

    async def seen(self, key: str) -> bool:
        return key in await self._load_known()

    async def add(self, mailbox: str, key: str, data: bytes, flags: list[str], date: int | None) -> None:
        """Import one message unless ``key`` was imported before."""
        known = await self._load_known()
        name = normalize_mailbox_name(mailbox)
        self.result.mailboxes.add(name)
        if key in known:
            self.result.already += 1
            return
        box = await self.mailbox(name)
        flags = usable_flags(flags)
        when = datetime.fromtimestamp(date, timezone.utc) if date is not None else None
        # The source identity is recorded in the message's own transaction, and an imported
        # message is not \Recent.
        await self.store.deliver([(box.id, flags)], data, when, imported=Import(self.account.id, self.source, key))
        known.add(key)
        self.result.imported += 1
        self.report()

    def report(self) -> None:
        self.progress(f"{self.result.imported} imported, {self.result.already} already there", self.done, self.total)


def usable_flags(flags: list[str]) -> list[str]:
    """The flags rmail can store: a keyword IMAP could not carry (a space, a bracket, 8-bit)
    or one past the per-message limit is left out rather than failing the whole import."""
    out: list[str] = []
    for flag in flags:
        try:
            flags_to_columns([flag])
        except InvalidInput:
            continue
        if flag.startswith("\\") or sum(not f.startswith("\\") for f in out) < MAX_KEYWORDS:
            out.append(flag)
    return out


def _read_keywords(folder: Path, root: Path) -> dict[int, str]:
    for path in (folder / "dovecot-keywords", root / "dovecot-keywords"):
        try:
            return parse_keywords_file(path.read_text(encoding="utf-8", errors="replace"))
        except FileNotFoundError:
            continue
    return {}


def maildir_folders(root: Path) -> list[tuple[str, Path]]:
    """(mailbox name, folder dir) of a Maildir++ tree: INBOX first, then the ``.Name`` dirs."""
    if not (root / "cur").is_dir() and not (root / "new").is_dir():
        raise InvalidInput(f"{root} is not a Maildir (no cur/ or new/ inside)")
    folders = [("INBOX", root)]
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") and entry.name not in (".", "..") and len(entry.name) > 1 \
                and entry.is_dir() and ((entry / "cur").is_dir() or (entry / "new").is_dir()):
            folders.append((folder_to_mailbox(entry.name), entry))
    return folders


async def import_maildir(store: MailStore, account: Account, root: Path,
                         progress: Progress | None = None) -> ImportResult:
    importer = Importer(store, account, "maildir", progress)
    folders = maildir_folders(root)
    importer.total = sum(1 for _, folder in folders for sub in ("cur", "new") if (folder / sub).is_dir()
                         for path in (folder / sub).iterdir() if not path.name.startswith("."))
    for mailbox, folder in folders:
        try:
            mailbox = normalize_mailbox_name(mailbox)
        except InvalidInput as exc:
            raise InvalidInput(f"folder {folder.name}: {exc}") from None
        keywords = _read_keywords(folder, root)
        for sub in ("cur", "new"):
            directory = folder / sub
            if not directory.is_dir():
                continue
            for path in sorted(directory.iterdir()):
                if path.name.startswith(".") or not path.is_file():
                    continue
                importer.done += 1
                base, info = split_maildir_name(path.name)
                key = f"{mailbox}\x00{base}"
                if await importer.seen(key):
                    importer.result.mailboxes.add(mailbox)
                    importer.result.already += 1
                    importer.report()
                    continue
                # new/ holds mail no client has seen: unseen, whatever its name says.
                flags = maildir_flags(info, keywords) if sub == "cur" else []
                data = to_crlf(path.read_bytes())
                await importer.add(mailbox, key, data, flags, int(path.stat().st_mtime))
    return importer.result


async def import_mbox(store: MailStore, account: Account, path: Path, mailbox: str = "INBOX",
                      progress: Progress | None = None) -> ImportResult:
    importer = Importer(store, account, "mbox", progress)
    mailbox = normalize_mailbox_name(mailbox)
    occurrences: dict[str, int] = {}
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise InvalidInput(f"no mbox file {path}") from None
    with fh:
        importer.total = os.fstat(fh.fileno()).st_size
        for message in read_mbox(fh):
            importer.done = fh.tell()
            digest = hashlib.sha256(message.data).hexdigest()
            n = occurrences[digest] = occurrences.get(digest, 0) + 1
            await importer.add(mailbox, f"{mailbox}\x00{digest}#{n}", message.data, message.flags, message.date)
    return importer.result


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, exist_ok=True)


def _require_new(path: Path) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InvalidInput(f"{path} exists and is not an empty directory; export into a new one")


async def export_maildir(store: MailStore, account: Account, root: Path,
                         progress: Progress | None = None) -> ExportResult:
    """Every mailbox of ``account`` as a Maildir++ tree at ``root`` (new or empty). Files hold
    the stored bytes (CRLF line ends, as delivered), all in cur/ with their flags; a file's
    mtime is the message's internal date. Written 0600 in 0700 directories (it is mail)."""
    note = progress or no_progress
    _require_new(root)
    result = ExportResult()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    subscribed = [name for name in await store.list_subscriptions(account.id) if name != "INBOX"]
    for box in await store.list_mailboxes(account.id):
        folder = root if box.name == "INBOX" else root / mailbox_to_folder(box.name)
        for sub in ("", "cur", "new", "tmp"):
            _private_dir(folder / sub if sub else folder)
        if folder != root:
            (folder / "maildirfolder").touch(mode=0o600)
        letters: dict[str, str] = {}
        metas = await store.list_messages(box.id)
        for n, meta in enumerate(metas, 1):
            for flag in sorted(meta.flags):
                if not flag.startswith("\\") and flag not in letters:
                    if len(letters) < len(KEYWORD_LETTERS):
                        letters[flag] = KEYWORD_LETTERS[len(letters)]
                    else:
                        result.dropped_keywords += 1
            data = await store.read_message(meta.blob_id)
            when = int(meta.internaldate.timestamp())
            name = f"{when}.R{box.uidvalidity}U{meta.uid}.rmail,S={len(data)}:2,{maildir_info(meta.flags, letters)}"
            target = folder / "cur" / name
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.utime(target, (when, when))
            result.messages += 1
            note(f"{box.name}: {result.messages} exported", n, len(metas))
        if letters:
            numbered = {KEYWORD_LETTERS.index(letter): flag for flag, letter in letters.items()}
            _write_private(folder / "dovecot-keywords", format_keywords_file(numbered).encode())
        result.mailboxes += 1
    if subscribed:
        _write_private(root / "subscriptions", "".join(f"{name}\n" for name in subscribed).encode())
    return result


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


async def export_mbox(store: MailStore, account: Account, mailbox: str, path: Path,
                      progress: Progress | None = None) -> ExportResult:
    """One mailbox as an mboxrd file (new; written 0600), flags in Status/X-Status/X-Keywords."""
    note = progress or no_progress
    box = await store.get_mailbox(account.id, mailbox)
    result = ExportResult(mailboxes=1)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidInput(f"{path} exists already; export into a new file") from None
    with os.fdopen(fd, "wb") as fh:
        metas = await store.list_messages(box.id)
        for meta in metas:
            data = await store.read_message(meta.blob_id)
            fh.write(write_mbox_message(data, meta.flags, int(meta.internaldate.timestamp())))
            result.messages += 1
            note(f"{result.messages} exported", result.messages, len(metas))
    return result
