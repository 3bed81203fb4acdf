"""LSUB (RFC 3501 §6.3.9) over the user's subscription list (§6.3.6): unsubscribed parents that
"%" would hide a subscribed child behind are returned \\Noselect; a subscription is a name, kept
whether or not a mailbox has it."""

from __future__ import annotations

from rmail.server.runtime import ServerRuntime

from .conftest import RawClient


async def test_lsub_percent_shows_hidden_parent_noselect(runtime: ServerRuntime) -> None:
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    assert (await c.cmd(b"c1", b"CREATE Work/2024/Q1")).startswith(b"c1 OK [MAILBOXID (F")
    # CREATE subscribes nothing: subscribe the deepest one only.
    assert await c.cmd(b"s1", b"SUBSCRIBE Work/2024/Q1") == b"s1 OK SUBSCRIBE completed\r\n"
    top = await c.cmd(b"l1", b'LSUB "" %')
    assert b'* LSUB (\\Noselect) "/" "Work"\r\n' in top
    assert b"Work/" not in top
    assert top.endswith(b"l1 OK LSUB completed\r\n")
    assert await c.cmd(b"l2", b'LSUB "Work/" %') == (
        b'* LSUB (\\Noselect) "/" "Work/2024"\r\nl2 OK LSUB completed\r\n')
    assert await c.cmd(b"l3", b'LSUB "" Work/%/%') == (
        b'* LSUB () "/" "Work/2024/Q1"\r\nl3 OK LSUB completed\r\n')
    # "*" shows the subscribed name itself, never an unsubscribed parent.
    assert await c.cmd(b"l4", b'LSUB "" Work*') == (
        b'* LSUB () "/" "Work/2024/Q1"\r\nl4 OK LSUB completed\r\n')
    # A subscribed parent is listed as itself, without \Noselect.
    await c.cmd(b"s", b"SUBSCRIBE Work")
    assert await c.cmd(b"l5", b'LSUB "" Work') == (
        b'* LSUB () "/" "Work"\r\nl5 OK LSUB completed\r\n')
    # LIST is not affected: the parents are real mailboxes.
    assert await c.cmd(b"l6", b'LIST "" Work/%') == (
        b'* LIST (\\HasChildren) "/" "Work/2024"\r\nl6 OK LIST completed\r\n')
    await c.close()


async def test_subscriptions_are_names_independent_of_mailboxes(runtime: ServerRuntime) -> None:
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    # A name no mailbox has may be subscribed (as Dovecot); LSUB lists it without attributes.
    assert await c.cmd(b"s", b"SUBSCRIBE Nowhere/Deep") == b"s OK SUBSCRIBE completed\r\n"
    assert await c.cmd(b"s2", b"SUBSCRIBE Nowhere/Deep") == b"s2 OK SUBSCRIBE completed\r\n"
    assert await c.cmd(b"l", b'LSUB "" Nowhere*') == (
        b'* LSUB () "/" "Nowhere/Deep"\r\nl OK LSUB completed\r\n')
    assert b'* LSUB (\\Noselect) "/" "Nowhere"\r\n' in await c.cmd(b"l2", b'LSUB "" %')
    # CREATE does not subscribe, DELETE and RENAME do not unsubscribe.
    assert (await c.cmd(b"c", b"CREATE Box")).startswith(b"c OK [MAILBOXID (F")
    assert await c.cmd(b"l3", b'LSUB "" Box') == b"l3 OK LSUB completed\r\n"
    await c.cmd(b"s3", b"SUBSCRIBE Box")
    assert await c.cmd(b"r", b"RENAME Box Crate") == b"r OK RENAME completed\r\n"
    assert await c.cmd(b"l4", b'LSUB "" *x') == b'* LSUB () "/" "Box"\r\nl4 OK LSUB completed\r\n'
    assert await c.cmd(b"l5", b'LSUB "" Crate') == b"l5 OK LSUB completed\r\n"
    await c.cmd(b"s4", b"SUBSCRIBE Crate")
    assert await c.cmd(b"d", b"DELETE Crate") == b"d OK DELETE completed\r\n"
    assert await c.cmd(b"l6", b'LSUB "" Crate') == b'* LSUB () "/" "Crate"\r\nl6 OK LSUB completed\r\n'
    # UNSUBSCRIBE of a name not subscribed is OK (RFC 9051 §6.3.8); a bad name is not.
    assert await c.cmd(b"u", b"UNSUBSCRIBE Never") == b"u OK UNSUBSCRIBE completed\r\n"
    assert await c.cmd(b"u2", b"UNSUBSCRIBE Crate") == b"u2 OK UNSUBSCRIBE completed\r\n"
    assert await c.cmd(b"l7", b'LSUB "" Crate') == b"l7 OK LSUB completed\r\n"
    assert (await c.cmd(b"b", b"SUBSCRIBE a//b")).startswith(b"b NO ")
    await c.close()
