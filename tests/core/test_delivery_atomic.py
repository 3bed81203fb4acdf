"""Delivery to local and remote recipients is one transaction: when queueing the remote copy
fails, the sender is told to retry and no local copy exists (before, the local copies were
committed first, and every retry added another)."""

from __future__ import annotations

import sqlite3

import aiosmtplib
import pytest

from rmail.server.runtime import ServerRuntime

from ..conftest import PASSWORD

HELLO = "From: alice@example.com\r\nTo: bob@example.com\r\nSubject: Hello\r\n\r\nBody\r\n"
RECIPIENTS = ["bob@example.com", "dave@elsewhere.example.org"]


def refuse_queue_inserts(rt: ServerRuntime, refuse: bool) -> None:
    """Make every INSERT into the queue table fail (another connection changes the schema)."""
    conn = sqlite3.connect(rt.config.db_path)
    try:
        if refuse:
            conn.execute("CREATE TRIGGER refuse_queue BEFORE INSERT ON queue"
                         " BEGIN SELECT RAISE(ABORT, 'queue insert refused by the test'); END")
        else:
            conn.execute("DROP TRIGGER refuse_queue")
        conn.commit()
    finally:
        conn.close()


async def bob_inbox(rt: ServerRuntime) -> int:
    bob = await rt.accounts.get_user("bob@example.com")
    return (await rt.store.status((await rt.store.get_mailbox(bob.id, "INBOX")).id)).messages


async def test_failed_queue_insert_leaves_no_local_copy(runtime: ServerRuntime) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=runtime.port("submission")) as client:
        await client.ehlo()
        await client.login("alice@example.com", PASSWORD)
        refuse_queue_inserts(runtime, True)
        for _ in range(2):   # the sender retries, as told
            with pytest.raises(aiosmtplib.SMTPDataError) as err:
                await client.sendmail("alice@example.com", RECIPIENTS, HELLO)
            assert err.value.code == 451 and err.value.message.startswith("4.")
        assert await bob_inbox(runtime) == 0, "nothing is stored when the sender is told to retry"
        assert await runtime.queue.list() == []
        refuse_queue_inserts(runtime, False)
        await client.sendmail("alice@example.com", RECIPIENTS, HELLO)
    assert await bob_inbox(runtime) == 1
    entries = await runtime.queue.list()
    assert [e.recipient for e in entries] == ["dave@elsewhere.example.org"]
    bob = await runtime.accounts.get_user("bob@example.com")
    [meta] = await runtime.store.list_messages((await runtime.store.get_mailbox(bob.id, "INBOX")).id)
    assert meta.blob_id == entries[0].blob_id, "local copy and queue entry share one blob"


async def test_remote_only_delivery_still_queues(runtime: ServerRuntime) -> None:
    report = await runtime.delivery.deliver("alice@example.com", ["dave@elsewhere.example.org"],
                                            HELLO.encode(), may_relay=True)
    assert report.local == () and len(report.queued) == 1
    [entry] = await runtime.queue.list()
    assert await runtime.store.read_message(entry.blob_id) == HELLO.encode()
