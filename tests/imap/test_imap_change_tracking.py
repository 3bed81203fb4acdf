"""The change-tracking contract as a client sees it: a session subscribes before it reads its
snapshot, so nothing committed while SELECT runs goes unannounced; a mailbox deleted (also
one kept as \\Noselect for its children) and created again is a new life, and nothing of the
old one reaches sessions on the new one."""

from __future__ import annotations

import re

from rmail.server.runtime import ServerRuntime

from .conftest import RawClient

MSG = b"Subject: hi\r\n\r\nbody\r\n"


def append(name: bytes) -> bytes:
    return b"APPEND " + name + b" {%d+}\r\n%b" % (len(MSG), MSG)


async def test_a_message_committed_between_snapshot_and_subscription_is_announced(
        runtime: ServerRuntime) -> None:
    """Deliver exactly in the window after SELECT has read its snapshot: before, SELECT only
    subscribed after that point (after claiming \\Recent), and the client never heard of it."""
    alice = await runtime.accounts.get_user("alice@example.com")
    inbox = await runtime.store.get_mailbox(alice.id, "INBOX")
    await runtime.store.append(inbox.id, MSG)
    real = runtime.store.snapshot
    injected: list[int] = []

    async def snapshot_then_deliver(user_id: int, name: str):
        snap = await real(user_id, name)
        if not injected:
            # Committed and published before SELECT carries on.
            injected.append(await runtime.store.append(inbox.id, MSG))
        return snap
    runtime.store.snapshot = snapshot_then_deliver  # type: ignore[method-assign]
    try:
        c = await RawClient.connect(runtime.port("imap"))
        await c.login()
        selected = await c.cmd(b"s", b"SELECT INBOX")
    finally:
        del runtime.store.snapshot
    assert injected == [2]
    assert b"* 1 EXISTS\r\n" in selected, "the snapshot was read before the delivery"
    # The news comes with the SELECT's own reply or at the latest with the next command.
    later = await c.cmd(b"n", b"NOOP")
    assert b"* 2 EXISTS\r\n" in selected + later
    fetched = await c.cmd(b"f", b"UID FETCH 1:* (UID FLAGS)")
    assert re.findall(rb"UID (\d+)", fetched) == [b"1", b"2"]
    # The claim made by this SELECT took the late message too: it is \Recent here only.
    assert b"* 2 FETCH (UID 2 FLAGS (\\Recent))" in fetched
    other = await RawClient.connect(runtime.port("imap"))
    await other.login()
    assert b"* 0 RECENT\r\n" in await other.cmd(b"s", b"SELECT INBOX")
    await c.close()
    await other.close()


async def test_recreated_mailbox_with_children_is_a_new_life(runtime: ServerRuntime) -> None:
    """The issue's transcript: four messages, one expunged, DELETE of a parent with children,
    CREATE again, three new messages. A session on the new mailbox must see exactly those three
    and no EXPUNGE of the old life."""
    port = runtime.port("imap")
    a = await RawClient.connect(port)
    await a.login()
    assert (await a.cmd(b"c", b"CREATE Work/Sub")).startswith(b"c OK [MAILBOXID (F")
    for i in range(4):
        await a.cmd(b"p%d" % i, append(b"Work"))
    old = await a.cmd(b"s", b"SELECT Work")
    old_validity = re.search(rb"UIDVALIDITY (\d+)", old).group(1)
    await a.cmd(b"st", b"STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert b"* 1 EXPUNGE\r\n" in await a.cmd(b"x", b"EXPUNGE")
    await a.cmd(b"u", b"UNSELECT")
    assert await a.cmd(b"d", b"DELETE Work") == b"d OK DELETE completed\r\n"
    listed = await a.cmd(b"l", b'LIST "" "Work*"')
    assert b'* LIST (\\Noselect \\HasChildren) "/" "Work"\r\n' in listed
    assert (await a.cmd(b"c2", b"CREATE Work")).startswith(b"c2 OK [MAILBOXID (F")

    b = await RawClient.connect(port)
    await b.login()
    fresh = await b.cmd(b"s", b"SELECT Work")
    assert b"* 0 EXISTS\r\n" in fresh and b"[UIDNEXT 1]" in fresh
    assert re.search(rb"UIDVALIDITY (\d+)", fresh).group(1) != old_validity
    for i in range(3):
        assert b"[APPENDUID" in await a.cmd(b"q%d" % i, append(b"Work"))
    news = await b.cmd(b"n", b"NOOP")
    assert b"EXPUNGE" not in news
    assert b"* 3 EXISTS\r\n" in news
    fetched = await b.cmd(b"f", b"UID FETCH 1:* (UID)")
    assert re.findall(rb"UID (\d+)", fetched) == [b"1", b"2", b"3"]
    status = await a.cmd(b"t", b"STATUS Work (MESSAGES UIDNEXT)")
    assert b"(MESSAGES 3 UIDNEXT 4)" in status
    await a.close()
    await b.close()


async def test_session_on_a_deleted_parent_gets_bye_not_the_new_life(runtime: ServerRuntime) -> None:
    port = runtime.port("imap")
    a, b = await RawClient.connect(port), await RawClient.connect(port)
    await a.login()
    await b.login()
    await b.cmd(b"c", b"CREATE Work/Sub")
    await b.cmd(b"p", append(b"Work"))
    assert b"* 1 EXISTS" in await a.cmd(b"s", b"SELECT Work")
    await b.cmd(b"d", b"DELETE Work")
    await b.cmd(b"c2", b"CREATE Work")
    await b.cmd(b"p2", append(b"Work"))
    await a.send(b"n NOOP\r\n")
    assert await a.line() == b"* BYE Selected mailbox was deleted, have to disconnect\r\n"
    assert await a.line() == b""
    await a.close()
    await b.close()
