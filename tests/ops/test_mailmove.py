"""``import maildir|mbox`` and ``export maildir|mbox`` through the real CLI (run.py)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from rmail.server.core.accounts import Accounts
from rmail.server.core.storage import MailStore
from tests.helpers.stores import open_sqlite

from ..helpers.server import cli_runner


@pytest.fixture
def cli(tmp_path: Path):
    run = cli_runner(tmp_path)
    for user in ("alice@example.com", "bob@example.com"):
        assert run("user", "add", user, "--password", "pw").returncode == 0
    return run


def contents(data_dir: Path, user: str) -> dict[str, list[tuple[bytes, frozenset[str], int]]]:
    """Every mailbox of ``user`` with (bytes, flags, internal date) of each message, in UID order,
    plus the mailboxes' unclaimed-\\Recent state under the key "!recent"."""
    async def go():
        store_backend = await open_sqlite(data_dir)
        store = store_backend.mail
        try:
            account = await Accounts(store_backend.directory, bcrypt_rounds=4).get_user(user)
            out = {}
            recent = {}
            for box in await store.list_mailboxes(account.id):
                rows = []
                for meta in await store.list_messages(box.id):
                    rows.append((await store.read_message(meta.blob_id), meta.flags,
                                 int(meta.internaldate.timestamp())))
                out[box.name] = rows
                recent[box.name] = (await store.snapshot(account.id, box.name)).unclaimed_recent
            out["!recent"] = recent
            return out
        finally:
            await store_backend.close()
    return asyncio.run(go())


def msg(subject: str, body: str = "hello\n") -> bytes:
    return f"From: someone@example.net\nTo: alice@example.com\nSubject: {subject}\n\n{body}".encode()


def put(directory: Path, name: str, data: bytes, mtime: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))


def dovecot_maildir(root: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    (root / "dovecot-keywords").write_text("0 $Forwarded\n1 Work\n")
    put(root / "cur", "1000.M1P1.host,S=60:2,S", msg("seen"), 1_600_000_000)
    put(root / "cur", "1001.M2P1.host:2,FRSab", msg("answered flagged keywords"), 1_600_000_100)
    put(root / "cur", "1002.M3P1.host:2,DT", msg("draft deleted"), 1_600_000_200)
    put(root / "cur", "1003.M4P1.host:2,", msg("unseen in cur"), 1_600_000_300)
    put(root / "new", "1004.M5P1.host", msg("brand new"), 1_600_000_400)
    sub = root / ".Work.Projects"
    put(sub / "cur", "2000.M6P1.host:2,S", msg("project", "From the start\n>From quoted\n"), 1_500_000_000)
    (sub / "maildirfolder").touch()
    put(root / ".Entw&APw-rfe" / "cur", "3000.M7P1.host:2,D", msg("umlaut folder"), 1_400_000_000)


def test_import_maildir_as_dovecot_writes_it(cli, tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    dovecot_maildir(maildir)
    r = cli("import", "maildir", "alice@example.com", str(maildir))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "imported 7 messages into 3 mailboxes (0 already there)"

    boxes = contents(tmp_path / "data", "alice@example.com")
    inbox = {data.split(b"Subject: ")[1].split(b"\r\n")[0].decode(): (flags, date)
             for data, flags, date in boxes["INBOX"]}
    assert inbox == {
        "seen": ({"\\Seen"}, 1_600_000_000),
        "answered flagged keywords": ({"\\Answered", "\\Flagged", "\\Seen", "$Forwarded", "Work"}, 1_600_000_100),
        "draft deleted": ({"\\Draft", "\\Deleted"}, 1_600_000_200),
        "unseen in cur": (set(), 1_600_000_300),
        "brand new": (set(), 1_600_000_400),
    }
    assert boxes["Work/Projects"][0][0] == msg("project", "From the start\n>From quoted\n").replace(b"\n", b"\r\n")
    assert boxes["Entwürfe"][0][1] == {"\\Draft"}
    assert "Work" in boxes                         # the parent exists, as a mailbox of its own
    assert not any(boxes["!recent"].values()), "imported mail must not be \\Recent"

    # A second run, after a client marked a message seen (its file name changed), adds nothing.
    (maildir / "cur" / "1003.M4P1.host:2,").rename(maildir / "cur" / "1003.M4P1.host:2,S")
    (maildir / "new" / "1004.M5P1.host").rename(maildir / "cur" / "1004.M5P1.host:2,S")
    r = cli("import", "maildir", "alice@example.com", str(maildir))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "imported 0 messages into 3 mailboxes (7 already there)"
    # A new message is picked up on the next run.
    put(maildir / "new", "1005.M8P1.host", msg("later"), 1_600_000_500)
    r = cli("import", "maildir", "alice@example.com", str(maildir))
    assert r.stdout.strip() == "imported 1 messages into 3 mailboxes (7 already there)"


MBOX = (b"From alice@example.org Thu Jan  1 00:00:10 1970\n"
        b"From: a@example.org\nSubject: one\nStatus: RO\nX-Status: AF\nX-Keywords: Work\n\n"
        b"From the body, quoted by the writer:\n>From here\n>>From there\n\n"
        b"From bob@example.org Sat Sep 13 12:26:40 2020\n"
        b"From: b@example.org\nSubject: two\n\nplain\n\n")


def test_import_mbox_unquotes_and_counts(cli, tmp_path: Path) -> None:
    mbox = tmp_path / "old.mbox"
    # The first body line begins with "From " right after the header's blank line: a writer
    # must quote it; here it is quoted, as mboxrd writers do.
    mbox.write_bytes(MBOX.replace(b"\n\nFrom the body", b"\n\n>From the body"))
    r = cli("import", "mbox", "alice@example.com", str(mbox), "--mailbox", "Old/Mail")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "imported 2 messages into 1 mailboxes (0 already there)"
    box = contents(tmp_path / "data", "alice@example.com")["Old/Mail"]
    assert box[0] == (b"From: a@example.org\r\nSubject: one\r\n\r\nFrom the body, quoted by the writer:\r\n"
                      b"From here\r\n>From there\r\n", {"\\Seen", "\\Answered", "\\Flagged", "Work"}, 10)
    assert box[1] == (b"From: b@example.org\r\nSubject: two\r\n\r\nplain\r\n", set(), 1_600_000_000)
    r = cli("import", "mbox", "alice@example.com", str(mbox), "--mailbox", "Old/Mail")
    assert r.stdout.strip() == "imported 0 messages into 1 mailboxes (2 already there)"
    r = cli("import", "mbox", "nobody@example.com", str(mbox))
    assert r.returncode == 1 and "no user" in r.stderr and "Traceback" not in r.stderr


def test_export_then_import_round_trip(cli, tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    dovecot_maildir(maildir)
    mbox = tmp_path / "in.mbox"
    mbox.write_bytes(MBOX.replace(b"\n\nFrom the body", b"\n\n>From the body"))
    assert cli("import", "maildir", "alice@example.com", str(maildir)).returncode == 0
    assert cli("import", "mbox", "alice@example.com", str(mbox), "--mailbox", "Archive").returncode == 0
    alice = contents(tmp_path / "data", "alice@example.com")

    out = tmp_path / "export"
    r = cli("export", "maildir", "alice@example.com", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("exported 9 messages from ")
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in out.rglob("*") if p.is_file())
    assert (out / ".Work.Projects" / "cur").is_dir() and (out / ".Entw&APw-rfe" / "cur").is_dir()
    r = cli("export", "maildir", "alice@example.com", str(out))
    assert r.returncode == 1 and "not an empty directory" in r.stderr

    assert cli("import", "maildir", "bob@example.com", str(out)).returncode == 0
    bob = contents(tmp_path / "data", "bob@example.com")
    for name, rows in alice.items():
        if name != "!recent":
            assert bob[name] == rows, name     # bytes, flags, keywords and internal dates

    for name in ("INBOX", "Archive"):
        file = tmp_path / f"{name}.mbox"
        r = cli("export", "mbox", "alice@example.com", name, str(file))
        assert r.returncode == 0, r.stderr
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        r = cli("import", "mbox", "bob@example.com", str(file), "--mailbox", f"FromMbox/{name}")
        assert r.returncode == 0, r.stderr
        bob = contents(tmp_path / "data", "bob@example.com")
        assert bob[f"FromMbox/{name}"] == alice[name]
    assert b"\n>From here\n>>From there\n" in (tmp_path / "Archive.mbox").read_bytes()
    r = cli("export", "mbox", "alice@example.com", "INBOX", str(tmp_path / "INBOX.mbox"))
    assert r.returncode == 1 and "exists already" in r.stderr


def test_progress_is_drawn_in_place_only_on_a_terminal() -> None:
    import io

    from rmail.cli.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Terminal()
    p = Progress(tty, interval=0)
    p.update("scanning")                       # amount unknown: the text alone
    p.update("1 imported", 1, 4)
    p.update("4 imported", 4, 4)
    drawn = tty.getvalue()
    p.clear()
    assert "scanning" in drawn and "4 imported" in drawn and "4/4" in drawn and "━" in drawn
    assert "\r" in drawn or "\x1b[" in drawn      # rewritten in place, not a line each
    pipe = io.StringIO()
    p = Progress(pipe, interval=0)
    p.update("1 imported", 1, 4)
    p.clear()
    assert pipe.getvalue() == ""


async def test_imports_report_how_much_of_the_source_is_done(tmp_path: Path) -> None:
    from rmail.server.core.mailmove import import_maildir, import_mbox
    from tests.helpers.stores import accounts_of, open_sqlite
    root = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    for i in range(3):
        (root / "cur" / f"{i}.host:2,S").write_bytes(b"Subject: %d\n\nbody\n" % i)
    mbox = tmp_path / "m.mbox"
    mbox.write_bytes(b"From a@example.org Thu Jan  1 00:00:10 1970\nSubject: a\n\nx\n\n"
                     b"From b@example.org Thu Jan  1 00:00:10 1970\nSubject: b\n\ny\n\n")
    backend = await open_sqlite(tmp_path / "data")
    try:
        account = await accounts_of(backend).add_user("alice@example.com", "pw")
        seen: list[tuple[int | None, int | None]] = []
        await import_maildir(backend.mail, account, root, lambda text, done=None, total=None: seen.append((done, total)))
        assert seen == [(1, 3), (2, 3), (3, 3)]
        seen.clear()
        await import_mbox(backend.mail, account, mbox, "INBOX",
                          lambda text, done=None, total=None: seen.append((done, total)))
        size = mbox.stat().st_size
        assert [t for _, t in seen] == [size, size] and seen[-1][0] == size
    finally:
        await backend.close()


def test_a_keyword_imap_cannot_carry_is_left_out_not_fatal(cli, tmp_path: Path) -> None:
    mbox = tmp_path / "k.mbox"
    mbox.write_bytes(b"From x@example.org Thu Jan  1 00:00:10 1970\nSubject: k\nX-Keywords: Work caf\xc3\xa9 Home\n"
                     b"Status: O\n\nbody\n\n")
    r = cli("import", "mbox", "alice@example.com", str(mbox))
    assert r.returncode == 0, r.stderr
    (data, flags, _), = contents(tmp_path / "data", "alice@example.com")["INBOX"]
    assert flags == {"Work", "Home"} and data == b"Subject: k\r\n\r\nbody\r\n"
