"""LSUB (RFC 3501 §6.3.9): unsubscribed parents that "%" would hide a subscribed child behind
are returned \\Noselect; SUBSCRIBE of a name that does not exist is refused with NO."""

from __future__ import annotations

from rmail.server.runtime import ServerRuntime

from .conftest import RawClient


async def test_lsub_percent_shows_hidden_parent_noselect(runtime: ServerRuntime) -> None:
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    assert (await c.cmd(b"c1", b"CREATE Work/2024/Q1")).startswith(b"c1 OK [MAILBOXID (F")
    # New mailboxes start subscribed; keep only the deepest one (and the defaults).
    for name in (b"Work", b"Work/2024"):
        assert (await c.cmd(b"u", b"UNSUBSCRIBE " + name)) == b"u OK UNSUBSCRIBE completed\r\n"
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


async def test_subscribe_nonexistent_is_refused(runtime: ServerRuntime) -> None:
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    assert await c.cmd(b"s", b"SUBSCRIBE Nowhere") == (
        b"s NO [NONEXISTENT] no mailbox named Nowhere\r\n")
    assert await c.cmd(b"u", b"UNSUBSCRIBE Nowhere") == (
        b"u NO [NONEXISTENT] no mailbox named Nowhere\r\n")
    assert await c.cmd(b"l", b'LSUB "" Nowhere') == b"l OK LSUB completed\r\n"
    await c.close()
