"""Real, independent clients: curl (imap://) and mbsync (isync) two-way sync."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rmail.server.runtime import ServerRuntime
from tests.conftest import PASSWORD
from tests.helpers.clients import require_client

MSG = b"From: bob@example.com\r\nTo: alice@example.com\r\nSubject: curl test\r\n\r\nhello curl\r\n"


async def run(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(*args, cwd=cwd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


async def _inbox(runtime: ServerRuntime) -> int:
    account = await runtime.accounts.get_user("alice@example.com")
    return (await runtime.store.get_mailbox(account.id, "INBOX")).id


async def test_curl_list_select_fetch_search(runtime: ServerRuntime) -> None:
    curl = require_client("curl")
    inbox = await _inbox(runtime)
    await runtime.store.append(inbox, MSG)
    await runtime.store.append(inbox, MSG.replace(b"hello curl", b"second"), ["\\Seen"])
    base = f"imap://127.0.0.1:{runtime.port('imap')}"
    user = ["--user", f"alice@example.com:{PASSWORD}", "-s", "-S"]
    rc, out, err = await run(curl, *user, base + "/")
    assert rc == 0, err
    assert '* LIST (\\HasNoChildren) "/" "INBOX"' in out and "\\Sent" in out
    rc, out, err = await run(curl, *user, base + "/INBOX;UID=1")
    assert rc == 0, err
    assert out.encode().replace(b"\n", b"\r\n").replace(b"\r\r", b"\r") == MSG
    rc, out, err = await run(curl, *user, base + "/INBOX?UNSEEN")
    assert rc == 0, err
    assert out.strip() == "* SEARCH"  # curl's FETCH BODY[] set \Seen on message 1
    rc, out, err = await run(curl, *user, base + "/INBOX?BODY%20second")
    assert rc == 0, err
    assert out.strip() == "* SEARCH 2"
    rc, out, err = await run(curl, *user, "-X", "EXAMINE INBOX", base + "/")
    assert rc == 0, err
    assert "* 2 EXISTS" in out


MBSYNCRC = """\
IMAPAccount rmail
Host 127.0.0.1
Port {port}
User alice@example.com
Pass {password}
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account rmail

MaildirStore local
Path {root}/mail/
Inbox {root}/mail/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns INBOX Archive
Create Both
Expunge Both
SyncState *
Sync All
"""


def _maildir_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.parent.name in ("cur", "new")}


async def test_mbsync_two_way_sync_is_stable(runtime: ServerRuntime, tmp_path: Path) -> None:
    mbsync = require_client("mbsync")
    inbox = await _inbox(runtime)
    await runtime.store.append(inbox, MSG, ["\\Flagged"])
    await runtime.store.append(inbox, MSG.replace(b"curl test", b"second"), ["\\Seen"])
    rc_path = tmp_path / "mbsyncrc"
    rc_path.write_text(MBSYNCRC.format(port=runtime.port("imap"), password=PASSWORD, root=tmp_path))
    (tmp_path / "mail").mkdir()
    rc, out, err = await run(mbsync, "-c", str(rc_path), "-a")
    assert rc == 0, out + err
    local = _maildir_files(tmp_path / "mail")
    inbox_files = [k for k in local if k.startswith("INBOX/")]
    assert len(inbox_files) == 2
    assert any(k.endswith(",F") or ":2,F" in k for k in inbox_files)  # \Flagged came down
    # A message added locally goes up; a flag changed locally goes up.
    new_dir = tmp_path / "mail" / "INBOX" / "new"
    (new_dir / "1700000000.local.host").write_bytes(
        b"Subject: written locally\r\n\r\nfrom the maildir\r\n")
    seen = next(p for p in (tmp_path / "mail" / "INBOX" / "cur").iterdir() if ":2,S" in p.name)
    seen.rename(seen.with_name(seen.name.replace(":2,S", ":2,FS")))
    rc, out, err = await run(mbsync, "-c", str(rc_path), "-a")
    assert rc == 0, out + err
    metas = await runtime.store.list_messages(inbox)
    assert len(metas) == 3
    assert {frozenset(m.flags) for m in metas} == {
        frozenset({"\\Flagged"}), frozenset({"\\Seen", "\\Flagged"}), frozenset()}
    before_local = _maildir_files(tmp_path / "mail")
    before_remote = [(m.uid, m.flags) for m in metas]
    # The second run changes nothing on either side.
    rc, out, err = await run(mbsync, "-c", str(rc_path), "-a")
    assert rc == 0, out + err
    assert _maildir_files(tmp_path / "mail") == before_local
    assert [(m.uid, m.flags) for m in await runtime.store.list_messages(inbox)] == before_remote
