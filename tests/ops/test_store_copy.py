"""``run.py store copy``: an embedded store built through the services goes to a fresh PostgreSQL
database and from there back to a new data dir, and every user, rule, mailbox, message (bytes,
UIDs, MODSEQs, flags), expunge record, queue entry, quota, import record, counter and secret
arrives unchanged; refusals are one clear line; a copy beside a live writer is one snapshot.

The PostgreSQL side is read with raw SQL and through the backend's directory and queue stores
(this needs neither its mail store nor a running node).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import socket
import sqlite3
import sys
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import asyncpg
import pytest

from rmail.server.core import storage
from rmail.server.core.accounts import Accounts
from rmail.server.core.aliases import Aliases
from rmail.server.core.errors import AuthenticationFailed
from rmail.server.core.postgres import transfer as pg_transfer
from rmail.server.core.postgres.database import SERVER_SETTINGS, PgDatabase
from rmail.server.core.postgres.directory import PgDirectory
from rmail.server.core.postgres.queuestore import PgQueueStore
from rmail.server.core.queue import enqueue
from rmail.server.core.quota import Quotas
from rmail.server.core.sqlite.mail import INLINE_BLOB_MAX
from rmail.server.core.dkimkeys import DkimKeys, FileKeyStore
from rmail.server.core.storage import Backend, Import, StoreLocation, open_backend, open_key_store
from rmail.server.core.storage.transfer import (
    Batch, BlobRecord, DomainRecord, QueueRecord, Tally, encode_row, open_transfer, row_hash,
)

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"alice@example.com": "alice-pw", "bob@example.com": "bob-pw", "carol@example.org": "carol-pw"}
JWT_KEY = secrets.token_bytes(64)
BIG = 300 * 1024
BLOB_COLS = ("b.id, b.size, b.subject, b.from_, b.to_, b.cc, b.date, b.message_id, b.in_reply_to, b.refs, b.preview,"
             " b.envelope, b.body, b.bodystructure, b.header_text, b.search_text")


def message(key: str, size: int = 0) -> bytes:
    body = ("padding line to make the message as large as asked for\r\n" * (size // 56 + 1)) if size else "short\r\n"
    return (f"From: carol@example.net\r\nTo: alice@example.com\r\nSubject: copy {key}\r\n"
            f"Message-ID: <{key}@copy.test>\r\nDate: Tue, 2 Jan 2024 10:00:00 +0000\r\n\r\n{body}end {key}\r\n").encode()


def write_config(path: Path, data_dir: Path, url: str | None = None) -> Path:
    text = f'data_dir = "{data_dir}"\nbcrypt_rounds = 4\n'
    if url:
        text += f'[store]\nurl = "{url}"\n'
    path.write_text(text, encoding="utf-8")
    return path


async def run_cli(*args: str, config: Path) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMAIL_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run.py"), *args, "--config", str(config), cwd=config.parent, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def refused(result: tuple[int, str, str], text: str) -> None:
    code, _, err = result
    assert code == 1, err
    assert text in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err


# -- the source, built through the services -----------------------------------------------------

async def build_source(data: Path) -> None:
    """Every kind of row there is: two domains, three users (one admin), alias rules, a quota,
    mail with flags and keywords (one message a file, one shared by two mailboxes), an expunge,
    a renamed and a \\Noselect mailbox, an unsubscribed one, a subscribed name without a mailbox, an
    import record, two outbound
    entries (one already tried), the API secret, and a deleted mailbox whose id and
    UIDVALIDITY must never be handed out again."""
    backend = await open_backend(StoreLocation(data))
    try:
        await asyncio.to_thread(DkimKeys(backend.dkim_keys).ensure, "example.com")
        accounts = Accounts(backend.directory, bcrypt_rounds=4)
        alice = await accounts.add_user("alice@example.com", PASSWORDS["alice@example.com"], admin=True)
        bob = await accounts.add_user("bob@example.com", PASSWORDS["bob@example.com"])
        await accounts.add_user("carol@example.org", PASSWORDS["carol@example.org"])
        aliases = Aliases(accounts)
        await aliases.add("example.com", "sales-.*", "alice")
        await aliases.add("example.com", "support", "bob@example.com")
        await aliases.add("example.com", ".*", "alice")
        await aliases.move("example.com", ".*", 1)
        await Quotas(backend.directory).set(bob, 50_000_000)

        store = backend.mail
        inbox = await store.get_mailbox(alice.id, "INBOX")
        bob_inbox = await store.get_mailbox(bob.id, "INBOX")
        when = datetime(2024, 1, 2, 10, 0, tzinfo=timezone.utc)
        await store.deliver([(inbox.id, ["\\Seen"]), (bob_inbox.id, [])], message("shared"), when)
        big_uid = await store.append(inbox.id, message("big", BIG), ["\\Flagged", "$Label1"])
        doomed = await store.append(inbox.id, message("doomed"))
        kept = await store.append(inbox.id, message("kept"), ["\\Answered"])
        await store.store_flags(inbox.id, [big_uid, kept], "add", ["todo", "\\Draft"])
        await store.store_flags(inbox.id, [doomed], "add", ["\\Deleted"])
        assert await store.expunge(inbox.id) == [doomed]

        await store.create_mailbox(alice.id, "Projects")
        projects = await store.get_mailbox(alice.id, "Projects")
        await store.append(projects.id, message("project"), ["\\Seen", "work"])
        await store.rename_mailbox(alice.id, "Projects", "Archive/2024")
        await store.create_mailbox(alice.id, "Parent/Child")
        await store.delete_mailbox(alice.id, "Parent")          # has a child: stays as \Noselect
        assert await store.list_noselect(alice.id) == ["Parent"]
        await store.set_subscribed(alice.id, "Junk", False)
        await store.set_subscribed(alice.id, "Gone/Elsewhere", True)    # a name no mailbox has

        await store.deliver([(inbox.id, [])], message("imported"), when, imported=Import(alice.id, "mbox", "abc#1"))
        ids = await enqueue(store, "alice@example.com", ["x@remote.example", "y@remote.example"],
                            message("outbound"), 1_700_000_000)
        await backend.queue.reschedule(ids[0], attempts=2, next_attempt=1_700_000_600,
                                       last_error="451 4.7.1 try again later", delayed_notified=True)
        assert await backend.directory.secret("jwt", lambda: JWT_KEY) == JWT_KEY

        await store.create_mailbox(alice.id, "Temp")
        await store.delete_mailbox(alice.id, "Temp")
    finally:
        await backend.close()


# -- reading stores back ------------------------------------------------------------------------

async def fingerprint(backend: Backend) -> dict[str, Any]:
    """Everything a user, a session or the queue can see, by names (not ids), through the
    contract: equal fingerprints mean equal stores."""
    accounts = Accounts(backend.directory, bcrypt_rounds=4)
    store = backend.mail
    out: dict[str, Any] = {"domains": await backend.directory.list_domains()}
    users = await accounts.list_users()
    limits = await Quotas(backend.directory).limits()
    out["users"] = sorted((u.address, u.admin, limits[u.id]) for u in users)
    out["aliases"] = {d: [(r.position, r.pattern, r.target) for r in await backend.directory.alias_rules(d)]
                      for d, _ in out["domains"]}
    for user in users:
        boxes = {}
        for box in await store.list_mailboxes(user.id):
            changes = await store.changes_since(box.id, 0)
            messages = [(m.uid, m.modseq, sorted(m.flags), m.internaldate, m.size, await store.read_message(m.blob_id))
                        for m in await store.list_messages(box.id)]
            boxes[box.name] = (box.special_use, box.uidvalidity, box.uidnext, box.highestmodseq,
                               changes.recent_uid, sorted(changes.expunged), messages)
        out[user.address] = (boxes, await store.list_noselect(user.id), await store.imported_keys(user.id, "mbox"),
                             await store.list_subscriptions(user.id))
    out["queue"] = [(e.id, e.sender, e.recipient, e.size, e.created, e.attempts, e.next_attempt, e.last_error,
                     e.delayed_notified, await store.read_message(e.blob_id)) for e in await backend.queue.list()]
    out["jwt"] = await backend.directory.secret("jwt", lambda: b"made anew: the secret was not copied")
    return out


def sqlite_rows(data: Path) -> dict[str, set[tuple[Any, ...]]]:
    """The embedded store's tables as raw rows, message bytes included (files read too)."""
    conn = sqlite3.connect(data / "rmail.db")
    try:
        def rows(sql: str) -> set[tuple[Any, ...]]:
            return {tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in conn.execute(sql)}
        out = {
            "domains": rows("SELECT id, name FROM domains"),
            "users": rows("SELECT id, domain_id, local, local_key, password_hash, admin != 0, created FROM users"),
            "aliases": rows("SELECT id, domain_id, position, pattern, target_user_id FROM aliases"),
            "quotas": rows("SELECT user_id, bytes FROM quotas"),
            "imported": rows("SELECT user_id, source, key FROM imported"),
            "subscriptions": rows("SELECT user_id, name FROM subscriptions"),
            "mailboxes": rows("SELECT id, user_id, name, special_use, noselect != 0, uidvalidity,"
                              " uidnext, highestmodseq, recent_uid FROM mailboxes"),
            "messages": rows("SELECT mailbox_id, uid, modseq, sysflags, keywords, internaldate, size, blob_id, savedate"
                             " FROM messages"),
            "expunged": rows("SELECT mailbox_id, uid, modseq FROM expunged"),
            "queue": rows("SELECT id, sender, recipient, blob_id, size, created, attempts, next_attempt, last_error,"
                          " delayed_notified != 0 FROM queue"),
            "meta": rows("SELECT key, value FROM meta WHERE key IN ('uidvalidity', 'mailbox_id')"),
        }
        blobs = set()
        for r in conn.execute(f"SELECT {BLOB_COLS}, d.data FROM blobs b LEFT JOIN blob_data d ON d.id = b.id"):
            data_ = r[-1] if r[-1] is not None else (data / "blobs" / r[0][:2] / r[0]).read_bytes()
            blobs.add(tuple(bytes(v) if isinstance(v, memoryview) else v for v in r[:-1]) + (bytes(data_),))
        out["blobs"] = blobs
        return out
    finally:
        conn.close()


async def pg_rows(url: str) -> dict[str, set[tuple[Any, ...]]]:
    conn = await asyncpg.connect(url)
    try:
        async def rows(sql: str) -> set[tuple[Any, ...]]:
            return {tuple(r) for r in await conn.fetch(sql)}
        return {
            "domains": await rows("SELECT id, name FROM domains"),
            "users": await rows("SELECT id, domain_id, local, local_key, password_hash, admin, created FROM users"),
            "aliases": await rows("SELECT id, domain_id, position, pattern, target_user_id FROM aliases"),
            "quotas": await rows("SELECT user_id, bytes FROM quotas"),
            "imported": await rows("SELECT user_id, source, key FROM imported"),
            "subscriptions": await rows("SELECT user_id, name FROM subscriptions"),
            "mailboxes": await rows("SELECT id, user_id, name, special_use, noselect, uidvalidity,"
                                    " uidnext, highestmodseq, recent_uid FROM mailboxes"),
            "messages": await rows("SELECT mailbox_id, uid, modseq, sysflags, keywords, internaldate, size, blob_id, savedate"
                                   " FROM messages"),
            "expunged": await rows("SELECT mailbox_id, uid, modseq FROM expunged"),
            "queue": await rows("SELECT id, sender, recipient, blob_id, size, created, attempts, next_attempt,"
                                " last_error, delayed_notified FROM queue"),
            "meta": await rows("SELECT key, value FROM meta WHERE key = 'uidvalidity' UNION ALL"
                               " SELECT 'mailbox_id', last_value::text FROM mailboxes_id_seq"),
            "blobs": await rows(f"SELECT {BLOB_COLS}, d.data FROM blobs b JOIN blob_data d ON d.id = b.id"),
        }
    finally:
        await conn.close()


async def pg_counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        if not await conn.fetchval("SELECT to_regclass('users') IS NOT NULL"):
            return {}
        return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in ("users", "messages", "blobs", "queue")}
    finally:
        await conn.close()


@asynccontextmanager
async def pg_services(url: str) -> AsyncIterator[tuple[PgDirectory, PgQueueStore]]:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2, server_settings=SERVER_SETTINGS)
    try:
        db = PgDatabase(pool, "test")
        no_mail: Any = None      # reads only: the mail store they call for writes is not needed
        yield PgDirectory(db, no_mail), PgQueueStore(db, no_mail)
    finally:
        await pool.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the round trip -----------------------------------------------------------------------------

async def test_copy_to_postgresql_and_back(tmp_path: Path, pg_url: str) -> None:
    source = tmp_path / "source"
    await build_source(source)
    config = write_config(tmp_path / "rmail.toml", source)
    before = sqlite_rows(source)
    assert any(len(b[-1]) > INLINE_BLOB_MAX for b in before["blobs"])            # one message is a file
    assert len(list((source / "blobs").glob("??/*"))) == 1

    code, out, err = await run_cli("store", "copy", "--to", pg_url, config=config)
    assert code == 0, err
    assert "verified: counts and checksums match" in out
    assert "  messages   6\n" in out and "  queue      2\n" in out and "  users      3\n" in out
    assert "DKIM keys: 1 domain(s) carried across" in out
    assert sqlite_rows(source) == before                                          # the source is untouched
    keys = FileKeyStore(source / "keys" / "dkim").load("example.com")
    on_pg = open_key_store(StoreLocation(tmp_path, pg_url))
    try:
        assert on_pg.load("example.com") == keys and keys     # the published keys sign on every node
    finally:
        on_pg.close()  # type: ignore[attr-defined]

    # Raw tables: every row as it was, ids included; counters where they were.
    copied = await pg_rows(pg_url)
    for table in ("domains", "users", "aliases", "quotas", "imported", "subscriptions", "mailboxes", "messages",
                  "expunged", "queue", "blobs"):
        assert copied[table] == before[table], table
    assert dict(copied["meta"]) == dict(before["meta"])
    deleted_id = int(dict(before["meta"])["mailbox_id"])
    assert deleted_id > max(r[0] for r in before["mailboxes"])                   # "Temp" is gone, its id taken
    assert before["expunged"] and any(r[5] for r in before["mailboxes"])        # expunge records, a \Noselect

    # Through the backend's own directory and queue stores.
    async with pg_services(pg_url) as (directory, queue):
        accounts = Accounts(directory, bcrypt_rounds=4)
        for address, password in PASSWORDS.items():
            assert (await accounts.authenticate(address, password)).address == address
        with pytest.raises(AuthenticationFailed):
            await accounts.authenticate("alice@example.com", "bob-pw")
        assert [(r.pattern, r.target) for r in await directory.alias_rules("example.com")] == [
            (".*", "alice"), ("sales-.*", "alice"), ("support", "bob")]
        assert await directory.secret("jwt", lambda: b"not this") == JWT_KEY
        sqlite_backend = await open_backend(StoreLocation(source))
        try:
            assert await queue.list() == await sqlite_backend.queue.list()
            assert await directory.list_domains() == await sqlite_backend.directory.list_domains()
            assert await directory.quota_overrides() == await sqlite_backend.directory.quota_overrides()
            original = await fingerprint(sqlite_backend)
        finally:
            await sqlite_backend.close()

    # ... and back into a new data dir, from a config that uses the database.
    node = tmp_path / "node"
    pg_config = write_config(tmp_path / "pg.toml", node, pg_url)
    back = tmp_path / "back"
    code, out, err = await run_cli("store", "copy", "--to", str(back), config=pg_config)
    assert code == 0, err
    assert "verified: counts and checksums match" in out
    assert sqlite_rows(back) == before
    assert len(list((back / "blobs").glob("??/*"))) == 1                          # the large one is a file again
    assert ((back / "keys" / "jwt.key").stat().st_mode & 0o777) == 0o600
    assert FileKeyStore(back / "keys" / "dkim").load("example.com") == keys

    restored = await open_backend(StoreLocation(back))
    try:
        assert await fingerprint(restored) == original
        assert await restored.integrity_check() == "ok"
        accounts = Accounts(restored.directory, bcrypt_rounds=4)
        alice = await accounts.authenticate("alice@example.com", PASSWORDS["alice@example.com"])
        assert alice.admin
        # Counters went along: a new mailbox neither reuses the deleted one's id nor any UIDVALIDITY.
        fresh = await restored.mail.create_mailbox(alice.id, "Fresh")
        assert fresh.id > deleted_id
        assert fresh.uidvalidity > int(dict(before["meta"])["uidvalidity"])
    finally:
        await restored.close()

    # The database is no longer empty: a second copy into it is refused and changes nothing.
    counts = await pg_counts(pg_url)
    refused(await run_cli("store", "copy", "--to", pg_url, config=config), "is not empty")
    assert await pg_counts(pg_url) == counts
    # Nor into the data dir just filled.
    refused(await run_cli("store", "copy", "--to", str(back), config=pg_config), "is not empty")
    # The database a config uses is not a target, whatever host name reaches it.
    other_name = pg_url.replace("127.0.0.1", "localhost")
    refused(await run_cli("store", "copy", "--to", other_name, config=pg_config), "is the store this config uses")


async def test_refusals(tmp_path: Path) -> None:
    source = tmp_path / "source"
    await build_source(source)
    config = write_config(tmp_path / "rmail.toml", source)
    refused(await run_cli("store", "copy", "--to", str(source), config=config), "is the store this config uses")
    (tmp_path / "link").symlink_to(source)
    refused(await run_cli("store", "copy", "--to", str(tmp_path / "link"), config=config),
            "is the store this config uses")
    refused(await run_cli("store", "copy", "--to", "postgresql://rmail@127.0.0.1:notaport/mail", config=config),
            "not a valid PostgreSQL URL")
    refused(await run_cli("store", "copy", "--to", "mysql://rmail@127.0.0.1/mail", config=config),
            "mysql:// is not a store")
    refused(await run_cli("store", "copy", "--to", f"postgresql://rmail@127.0.0.1:{free_port()}/mail",
                          config=config), "cannot connect to PostgreSQL at postgresql://rmail@127.0.0.1:")
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    refused(await run_cli("store", "copy", "--to", str(home), config=config), "not an rmail store")
    assert sorted(p.name for p in home.iterdir()) == ["notes.txt"]
    refused(await run_cli("store", "copy", "--to", str(tmp_path / "x"), config=write_config(
        tmp_path / "empty.toml", tmp_path / "nothing")), "no rmail store in")
    assert not (tmp_path / "nothing").exists()                                   # a source is never created


async def test_a_damaged_source_fails_and_leaves_the_target_empty(tmp_path: Path, pg_url: str) -> None:
    source = tmp_path / "source"
    await build_source(source)
    for f in (source / "blobs").glob("??/*"):
        f.unlink()
    config = write_config(tmp_path / "rmail.toml", source)
    refused(await run_cli("store", "copy", "--to", pg_url, config=config), "the store is damaged")
    assert await pg_counts(pg_url) == {"users": 0, "messages": 0, "blobs": 0, "queue": 0}
    target = tmp_path / "target"
    refused(await run_cli("store", "copy", "--to", str(target), config=config), "the store is damaged")
    assert list((target / "blobs").glob("??/*")) == []
    async with open_transfer(StoreLocation(target), target=True) as t:
        await t.check_empty()


# -- consistency beside live writers ------------------------------------------------------------

async def test_copy_beside_a_writer_is_one_snapshot(tmp_path: Path, pg_url: str) -> None:
    source = tmp_path / "source"
    backend = await open_backend(StoreLocation(source))
    stop = asyncio.Event()
    try:
        alice = await Accounts(backend.directory, bcrypt_rounds=4).add_user("alice@example.com", "pw")
        inbox = await backend.mail.get_mailbox(alice.id, "INBOX")
        for i in range(150):
            await backend.mail.append(inbox.id, message(f"pre{i}", BIG if i % 15 == 0 else 0), ["\\Seen"])

        async def writer() -> int:
            n = 0
            while not stop.is_set():
                await backend.mail.append(inbox.id, message(f"live{n}", BIG if n % 10 == 0 else 0))
                n += 1
                await asyncio.sleep(0)
            return n
        task = asyncio.create_task(writer())
        await asyncio.sleep(0.2)
        config = write_config(tmp_path / "rmail.toml", source)
        code, out, err = await run_cli("store", "copy", "--to", pg_url, config=config)
        stop.set()
        written = await task
        assert code == 0, err
        assert "verified: counts and checksums match" in out
        source_uids = [m.uid for m in await backend.mail.list_messages(inbox.id)]
    finally:
        stop.set()
        await backend.close()

    conn = await asyncpg.connect(pg_url)
    try:
        copied = [r[0] for r in await conn.fetch(
            "SELECT m.uid FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.name = 'INBOX'"
            " AND b.user_id = (SELECT id FROM users WHERE local = 'alice') ORDER BY m.uid")]
        uidnext, modseq = await conn.fetchrow("SELECT uidnext, highestmodseq FROM mailboxes WHERE name = 'INBOX'"
                                              " AND user_id = (SELECT id FROM users WHERE local = 'alice')")
        blobs = await conn.fetchval("SELECT count(*) FROM blobs")
    finally:
        await conn.close()
    assert written > 0 and len(source_uids) > len(copied) >= 150                 # the writer went on throughout
    assert copied == source_uids[:len(copied)]                                     # a prefix: nothing skipped
    assert uidnext == copied[-1] + 1 and modseq == copied[-1] + 1                  # mailbox row of the same moment
    assert blobs == len(copied)
    assert f"  messages   {len(copied)}\n" in out                                  # counts at the snapshot


async def test_a_message_deleted_during_the_copy_is_left_out_as_expunged(tmp_path: Path) -> None:
    source = tmp_path / "source"
    backend = await open_backend(StoreLocation(source))
    try:
        alice = await Accounts(backend.directory, bcrypt_rounds=4).add_user("alice@example.com", "pw")
        store = backend.mail
        inbox = await store.get_mailbox(alice.id, "INBOX")
        small = await store.append(inbox.id, message("small"))
        big = await store.append(inbox.id, message("big", BIG), ["\\Deleted"])
        big_blob = (await store.get_meta(inbox.id, [big]))[0].blob_id
        modseq = (await store.status(inbox.id)).highestmodseq
        target = tmp_path / "target"
        async with open_transfer(StoreLocation(source), target=False) as src, \
                open_transfer(StoreLocation(target), target=True) as dst:
            async with src.dump() as dump:
                assert await store.expunge(inbox.id) == [big]
                for _ in range(200):          # its file goes just after the commit
                    if not (source / "blobs" / big_blob[:2] / big_blob).exists():
                        break
                    await asyncio.sleep(0.01)
                await dst.load(dump)
                assert dump.summary() == await dst.summary()
                assert dump.notes and "1 message(s) deleted" in dump.notes[0]
    finally:
        await backend.close()

    copy = await open_backend(StoreLocation(target))
    try:
        box = await copy.mail.get_mailbox(alice.id, "INBOX")
        assert [m.uid for m in await copy.mail.list_messages(box.id)] == [small]
        changes = await copy.mail.changes_since(box.id, modseq)
        assert changes.expunged == (big,) and changes.highestmodseq == modseq + 1
    finally:
        await copy.close()


async def test_small_batches_bound_memory_and_still_verify(tmp_path: Path, pg_url: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """With batches of 2 rows or 64 KiB, every table spans several batches both ways."""
    for module in (storage.transfer, pg_transfer):
        monkeypatch.setattr(module, "BATCH_ROWS", 2)
        monkeypatch.setattr(module, "BATCH_BYTES", 64 * 1024)
    source = tmp_path / "source"
    await build_source(source)
    backend = await open_backend(StoreLocation(source))
    try:
        alice = await Accounts(backend.directory, bcrypt_rounds=4).get_user("alice@example.com")
        inbox = await backend.mail.get_mailbox(alice.id, "INBOX")
        for i in range(12):
            await backend.mail.append(inbox.id, message(f"m{i}", 40 * 1024 if i % 2 else 0))
    finally:
        await backend.close()

    async def copy(src_loc: StoreLocation, dst_loc: StoreLocation) -> None:
        async with open_transfer(src_loc, target=False) as src, open_transfer(dst_loc, target=True) as dst:
            seen: dict[str, int] = {}

            async def checked() -> AsyncIterator[Batch]:
                async for batch in dump:
                    assert 1 <= len(batch.rows) <= 2
                    if len(batch.rows) > 1 and batch.table == "blobs":
                        assert sum(len(r.data) for r in batch.rows if isinstance(r, BlobRecord)) <= 64 * 1024 + BIG
                    seen[batch.table] = seen.get(batch.table, 0) + 1
                    yield batch
            async with src.dump() as dump:
                await dst.load(checked())
                assert dump.summary() == await dst.summary() == await src.summary()
            assert all(seen[t] > 1 for t in ("users", "blobs", "mailboxes", "messages")), seen

    await copy(StoreLocation(source), StoreLocation(tmp_path, pg_url))
    await copy(StoreLocation(tmp_path, pg_url), StoreLocation(tmp_path / "back"))
    assert sqlite_rows(tmp_path / "back") == sqlite_rows(source)


# -- the canonical form -------------------------------------------------------------------------

def test_summary_is_order_free_and_type_strict() -> None:
    a, b = DomainRecord(1, "a.example"), DomainRecord(2, "b.example")
    entry = QueueRecord(1, "s@a.example", "r@remote.example", "ab" * 16, 10, 5, 0, 5, "", False)
    assert row_hash("queue", entry) == hashlib.sha256(encode_row("queue", entry)).digest()
    one, two = Tally(), Tally()
    one.add(Batch("domains", (a, b)))
    two.add(Batch("domains", (b,)))
    two.add(Batch("domains", (a,)))
    assert one.summary() == two.summary() and one.summary().digest == two.summary().digest
    # 0 is not False, and a field cannot slide into its neighbour.
    assert row_hash("queue", entry) != row_hash("queue", entry._replace(delayed_notified=0))  # type: ignore[arg-type]
    assert encode_row("domains", DomainRecord(1, "ab")) != encode_row("domains", DomainRecord(1, "a"))
    three = Tally()
    three.add(Batch("domains", (a, DomainRecord(2, "c.example"))))
    assert one.summary().differences(three.summary()) == ["domains: the same number of rows, different content"]
    assert Tally().summary().differences(one.summary()) == ["domains: 0 rows against 2"]
    with pytest.raises(TypeError):
        encode_row("domains", DomainRecord(1, memoryview(b"x")))  # type: ignore[arg-type]
