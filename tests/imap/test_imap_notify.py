"""NOTIFY (RFC 5465): byte-exact transcripts after the RFC's examples, real sockets where
other sessions, SMTP delivery and the store change other mailboxes, and the bounds."""

from __future__ import annotations

import asyncio
import re
import smtplib

import pytest

from rmail.server.core.model import MailboxStatus
from rmail.server.imap import commands as c
from rmail.server.imap.connection import ImapServer
from rmail.server.imap.errors import CommandError
from rmail.server.imap.handlers import notify as notify_handler
from rmail.server.imap.notify import BadEvent, happened, list_changes, parse_spec, status_items
from rmail.server.imap.parser import ParseError, parse_command
from rmail.server.imap.wire import Frame
from rmail.server.runtime import ServerRuntime

from .caps import AFTER_LOGIN
from .conftest import RawClient

MSG = b"From: bob@example.com\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\nbody\r\n"
BADEVENT = (b"[BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)]")


def parse(line: bytes) -> c.Command:
    return parse_command(Frame((line,)))


def st(messages: int, uidnext: int, hms: int, unseen: int = 0, uidvalidity: int = 7) -> MailboxStatus:
    return MailboxStatus(messages, unseen, 0, uidnext, uidvalidity, hms, 0)


# -- pure rules -------------------------------------------------------------------------------

def test_parse_and_rules() -> None:
    cmd = parse(b"a NOTIFY SET STATUS (selected (MessageNew (uid body[header.fields (from)]) "
                b"messageexpunge)) (subtree (Lists \"My Box\") (MessageNew)) (personal NONE)")
    assert isinstance(cmd, c.Notify) and cmd.status
    spec = parse_spec(cmd)
    assert spec is not None and spec.selected == {"MessageNew", "MessageExpunge"}
    assert all(a.peek for a in spec.fetch if a.name == "BODY")   # never sets \Seen
    assert spec.events_for("Lists/x", frozenset()) == {"MessageNew"}
    assert spec.events_for("Listsx", frozenset()) == frozenset()
    assert spec.events_for("My Box", frozenset()) == {"MessageNew"}
    assert parse_spec(parse(b"a NOTIFY NONE")) is None
    # imaptest's notify group: MessageExpunge alone for other mailboxes is fine.
    assert parse_spec(parse(b"a NOTIFY SET (mailboxes x (MessageExpunge))")) is not None
    for bad in (b"a NOTIFY SET (selected (MessageNew))",
                b"a NOTIFY SET (selected (FlagChange))",
                b"a NOTIFY SET (selected (MailboxName))",
                b"a NOTIFY SET (selected NONE) (selected-delayed NONE)",
                b"a NOTIFY SET (personal (MessageNew (UID)))"):
        with pytest.raises(CommandError) as exc:
            parse_spec(parse(bad))
        assert exc.value.status == "BAD"
    with pytest.raises(BadEvent):
        parse_spec(parse(b"a NOTIFY SET (personal (AnnotationChange MessageNew))"))
    with pytest.raises(BadEvent):
        parse_spec(parse(b"a NOTIFY SET (personal (FooBar))"))
    for syntax in (b"a NOTIFY", b"a NOTIFY SET", b"a NOTIFY SET ()", b"a NOTIFY SET (inboxes)",
                   b"a NOTIFY SET (bogus (MessageNew))", b"a NOTIFY SET (subtree (MessageNew))",
                   b"a NOTIFY SET (personal ())", b"a NOTIFY NONE x"):
        with pytest.raises(ParseError):
            parse(syntax)


def test_status_items_and_what_happened() -> None:
    assert status_items({"MessageExpunge"}) == ("MESSAGES",)
    assert status_items({"MessageNew"}) == ("MESSAGES", "UIDNEXT", "UIDVALIDITY")
    assert status_items({"FlagChange"}) == ("UIDVALIDITY", "HIGHESTMODSEQ")
    assert happened(st(1, 2, 5), st(2, 3, 6)) == {"MessageNew"}
    assert happened(st(2, 3, 6), st(1, 3, 7)) == {"MessageExpunge"}
    assert happened(st(2, 3, 6), st(2, 4, 8)) == {"MessageNew", "MessageExpunge"}
    assert happened(st(2, 3, 6), st(2, 3, 7, unseen=1)) == {"FlagChange"}
    assert happened(st(2, 3, 6), st(2, 3, 6)) == frozenset()
    assert len(happened(st(2, 3, 6), st(0, 1, 1, uidvalidity=8))) == 3


def test_list_changes() -> None:
    changes = list_changes({"A": 1, "B": 2, "C": 3}, {"A": 1, "B2": 2, "D": 4},
                           frozenset({"A"}), frozenset({"B2"}))
    assert [(ch.name, ch.event, ch.old_name) for ch in changes] == [
        ("B2", "MailboxName", "B"), ("C", "MailboxName", None), ("D", "MailboxName", None),
        ("A", "SubscriptionChange", None), ("B2", "SubscriptionChange", None)]


# -- real sockets ---------------------------------------------------------------------------

async def pair(runtime: ServerRuntime) -> tuple[RawClient, RawClient]:
    port = runtime.port("imap")
    a, b = await RawClient.connect(port), await RawClient.connect(port)
    await a.login()
    await b.login()
    return a, b


async def append(client: RawClient, mailbox: bytes) -> None:
    reply = await client.cmd(b"p", b"APPEND %b {%d+}\r\n%b" % (mailbox, len(MSG), MSG))
    assert b"p OK" in reply


async def uidvalidity(runtime: ServerRuntime, name: str) -> int:
    account = await runtime.accounts.get_user("alice@example.com")
    return (await runtime.store.get_mailbox(account.id, name)).uidvalidity


async def test_capability_after_login(runtime: ServerRuntime) -> None:
    a = await RawClient.connect(runtime.port("imap"))
    await a.login()
    assert await a.cmd(b"c", b"CAPABILITY") == (
        b"* CAPABILITY " + AFTER_LOGIN + b"\r\nc OK CAPABILITY completed\r\n")
    await a.close()


async def test_rfc5465_example_transcript(runtime: ServerRuntime) -> None:
    """After RFC 5465 §7: STATUS for a subtree at once, a new message in the selected mailbox
    pushed with its fetch attributes, another mailbox's STATUS pushed, then NOTIFY NONE."""
    a, b = await pair(runtime)
    await b.cmd(b"c1", b"CREATE Lists/Lemonade")
    await append(b, b"Lists/Lemonade")
    v = await uidvalidity(runtime, "Lists/Lemonade")
    p = await uidvalidity(runtime, "Lists")   # CREATE made the parent a mailbox too
    await a.cmd(b"s", b"SELECT INBOX")
    assert await a.cmd(b"a", b"NOTIFY SET STATUS (selected (MessageNew (uid "
                       b"body.peek[header.fields (from to subject)]) MessageExpunge)) "
                       b"(subtree Lists (MessageNew))") == (
        b'* STATUS "Lists" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY %d)\r\n'
        b'* STATUS "Lists/Lemonade" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY %d)\r\n'
        b"a OK NOTIFY completed\r\n" % (p, v))
    await append(b, b"INBOX")
    header = b"From: bob@example.com\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\n"
    assert await a.line() == b"* 1 EXISTS\r\n"
    assert await a.line() == b"* 1 RECENT\r\n"
    assert await a.line() == (b"* 1 FETCH (UID 1 BODY[HEADER.FIELDS (from to subject)] {%d}\r\n"
                              % len(header))
    assert await a.reader.readexactly(len(header)) == header
    assert await a.line() == b")\r\n"
    await append(b, b"Lists/Lemonade")
    assert await a.line() == b'* STATUS "Lists/Lemonade" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY %d)\r\n' % v
    # The fetch did not set \Seen (BODY.PEEK), and nothing else is pending.
    assert await a.cmd(b"f", b"FETCH 1 (FLAGS)") == b"* 1 FETCH (FLAGS (\\Recent))\r\nf OK FETCH completed\r\n"
    assert await a.cmd(b"c", b"NOTIFY NONE") == b"c OK NOTIFY completed\r\n"
    await append(b, b"Lists/Lemonade")
    assert await a.cmd(b"n", b"NOOP") == b"n OK NOOP completed\r\n"
    await a.close()
    await b.close()


async def test_badevent_and_bad(runtime: ServerRuntime) -> None:
    a = await RawClient.connect(runtime.port("imap"))
    await a.login()
    assert await a.cmd(b"b", b"NOTIFY SET (selected (Messagenew (uid) messageexpunge)) "
                       b"(personal (annotationchange))") == (
        b"b NO " + BADEVENT + b" unsupported NOTIFY events: AnnotationChange\r\n")
    assert (await a.cmd(b"c", b"NOTIFY SET (selected (MessageNew))")).startswith(b"c BAD ")
    await a.close()


async def test_status_between_commands_and_in_idle(runtime: ServerRuntime) -> None:
    a, b = await pair(runtime)
    await b.cmd(b"c", b"CREATE Work")
    v = await uidvalidity(runtime, "Work")
    assert await a.cmd(b"n", b"NOTIFY SET (personal (MessageNew MessageExpunge FlagChange))") == (
        b"n OK NOTIFY completed\r\n")
    await append(b, b"Work")        # between commands: no command from A needed
    assert await a.line() == b'* STATUS "Work" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY %d)\r\n' % v
    await a.send(b"i IDLE\r\n")
    assert await a.line() == b"+ idling\r\n"
    await b.cmd(b"s", b"SELECT Work")
    await b.cmd(b"f", b"STORE 1 +FLAGS (\\Flagged)")
    line = await a.line()
    assert re.fullmatch(rb"\* STATUS \"Work\" \(UIDVALIDITY %d HIGHESTMODSEQ \d+\)\r\n" % v, line), line
    await b.cmd(b"e", b"STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert re.fullmatch(rb"\* STATUS \"Work\" \(UIDVALIDITY %d HIGHESTMODSEQ \d+\)\r\n" % v,
                        await a.line())
    await b.cmd(b"x", b"EXPUNGE")
    assert await a.line() == b'* STATUS "Work" (MESSAGES 0)\r\n'
    await a.send(b"DONE\r\n")
    assert await a.line() == b"i OK IDLE terminated\r\n"
    await a.close()
    await b.close()


async def test_smtp_and_store_changes_reach_inboxes_watch(runtime: ServerRuntime) -> None:
    a = await RawClient.connect(runtime.port("imap"))
    await a.login()
    v = await uidvalidity(runtime, "INBOX")
    assert await a.cmd(b"n", b"NOTIFY SET (inboxes (MessageNew))") == b"n OK NOTIFY completed\r\n"

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", runtime.port("smtp"), timeout=10) as smtp:
            smtp.sendmail("bob@example.com", ["alice@example.com"], MSG)
    await asyncio.to_thread(send)
    assert await a.line() == b'* STATUS "INBOX" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY %d)\r\n' % v
    await runtime.delivery.deliver("bob@example.com", ["alice@example.com"], MSG, may_relay=False)
    assert await a.line() == b'* STATUS "INBOX" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY %d)\r\n' % v
    # A flag change is not MessageNew: nothing is said.
    account = await runtime.accounts.get_user("alice@example.com")
    inbox = await runtime.store.get_mailbox(account.id, "INBOX")
    await runtime.store.store_flags(inbox.id, [1], "add", ["\\Flagged"])
    assert await a.cmd(b"o", b"NOOP") == b"o OK NOOP completed\r\n"
    await a.close()


async def test_mailbox_name_and_subscription_lists(runtime: ServerRuntime) -> None:
    a, b = await pair(runtime)
    assert await a.cmd(b"n", b"NOTIFY SET (personal (MailboxName SubscriptionChange))") == (
        b"n OK NOTIFY completed\r\n")
    await b.cmd(b"c", b"CREATE Projects")
    assert await a.line() == b'* LIST (\\HasNoChildren) "/" "Projects"\r\n'
    await b.cmd(b"r", b"RENAME Projects Done")
    assert await a.line() == b'* LIST (\\HasNoChildren) "/" "Done" ("OLDNAME" ("Projects"))\r\n'
    await b.cmd(b"s", b"SUBSCRIBE Done")
    assert await a.line() == b'* LIST (\\HasNoChildren \\Subscribed) "/" "Done"\r\n'
    await b.cmd(b"u", b"UNSUBSCRIBE Done")
    assert await a.line() == b'* LIST (\\HasNoChildren) "/" "Done"\r\n'
    await b.cmd(b"d", b"DELETE Done")
    assert await a.line() == b'* LIST (\\NonExistent) "/" "Done"\r\n'
    await a.close()
    await b.close()


async def test_subtree_filter_and_selected_never_gets_status(runtime: ServerRuntime) -> None:
    a, b = await pair(runtime)
    await b.cmd(b"c", b"CREATE Lists/One")
    await b.cmd(b"c", b"CREATE Other")
    await a.cmd(b"s", b"SELECT Lists/One")
    await a.cmd(b"n", b"NOTIFY SET (subtree Lists (MessageNew MessageExpunge MailboxName))")
    await append(b, b"Other")           # not watched
    await append(b, b"Lists/One")       # selected: no STATUS, and no SELECTED group: no push
    await b.cmd(b"c", b"CREATE Lists/Two")
    assert await a.line() == b'* LIST (\\HasNoChildren) "/" "Lists/Two"\r\n'
    await append(b, b"Lists/Two")       # watched from its creation on
    v = await uidvalidity(runtime, "Lists/Two")
    assert await a.line() == b'* STATUS "Lists/Two" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY %d)\r\n' % v
    # The selected mailbox's news at RFC 3501's moment.
    assert await a.cmd(b"o", b"NOOP") == b"* 1 EXISTS\r\n* 1 RECENT\r\no OK NOOP completed\r\n"
    await a.close()
    await b.close()


async def test_selected_delayed_holds_expunges(runtime: ServerRuntime) -> None:
    a, b = await pair(runtime)
    await append(b, b"INBOX")
    await append(b, b"INBOX")
    await a.cmd(b"s", b"SELECT INBOX")
    await b.cmd(b"s", b"SELECT INBOX")
    assert await a.cmd(b"n", b"NOTIFY SET (selected-delayed (MessageNew MessageExpunge))") == (
        b"n OK NOTIFY completed\r\n")
    await b.cmd(b"d", b"STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert await a.line() == b"* 1 FETCH (UID 1 FLAGS (\\Deleted \\Recent))\r\n"
    await b.cmd(b"x", b"EXPUNGE")
    await append(b, b"INBOX")
    assert await a.line() == b"* 3 EXISTS\r\n"      # pushed; the expunge waits
    assert re.fullmatch(rb"\* \d RECENT\r\n", await a.line())
    assert await a.cmd(b"o", b"NOOP") == b"* 1 EXPUNGE\r\no OK NOOP completed\r\n"
    await a.close()
    await b.close()


async def test_selected_pushes_expunges(runtime: ServerRuntime) -> None:
    a, b = await pair(runtime)
    await append(b, b"INBOX")
    await a.cmd(b"s", b"SELECT INBOX")
    await b.cmd(b"s", b"SELECT INBOX")
    await a.cmd(b"n", b"NOTIFY SET (selected (MessageNew MessageExpunge))")
    await b.cmd(b"d", b"STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert await a.line() == b"* 1 FETCH (UID 1 FLAGS (\\Deleted \\Recent))\r\n"
    await b.cmd(b"x", b"EXPUNGE")
    assert await a.line() == b"* 1 EXPUNGE\r\n"
    await a.close()
    await b.close()


async def test_overflow_and_cleanup(runtime: ServerRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = await pair(runtime)
    subscribers = len(runtime.bus._subscribers)
    names = b" ".join(b"m%d" % i for i in range(101))
    reply = await a.cmd(b"n", b"NOTIFY SET (mailboxes (%b) (MessageNew))" % names)
    assert reply.startswith(b"n NO [NOTIFICATIONOVERFLOW]"), reply
    account = await runtime.accounts.get_user("alice@example.com")
    count = len(await runtime.store.list_mailboxes(account.id))
    monkeypatch.setattr(notify_handler, "MAX_WATCHED", count - 1)
    reply = await a.cmd(b"n", b"NOTIFY SET (personal (MessageNew))")
    assert reply.startswith(b"n NO [NOTIFICATIONOVERFLOW]"), reply
    assert len(runtime.bus._subscribers) == subscribers      # a refused SET keeps nothing
    monkeypatch.setattr(notify_handler, "MAX_WATCHED", count)
    await a.cmd(b"n", b"NOTIFY SET (personal (MessageNew))")  # every mailbox: at the cap
    assert len(runtime.bus._subscribers) == subscribers + 1
    await b.cmd(b"c", b"CREATE X2")
    assert await a.line() == (b"* OK [NOTIFICATIONOVERFLOW] too many mailboxes to watch; "
                              b"NOTIFY is off\r\n")
    assert len(runtime.bus._subscribers) == subscribers
    await a.cmd(b"n", b"NOTIFY SET (personal (MailboxName))")
    assert len(runtime.bus._subscribers) == subscribers + 1
    await a.cmd(b"l", b"LOGOUT")
    for _ in range(50):
        if len(runtime.bus._subscribers) == subscribers:
            break
        await asyncio.sleep(0.02)
    assert len(runtime.bus._subscribers) == subscribers      # LOGOUT gives it back
    await a.close()
    await b.close()


async def test_changes_coalesce_per_mailbox(runtime: ServerRuntime) -> None:
    """A client that does not read: what waits is one mark per mailbox, not responses."""
    a, b = await pair(runtime)
    await b.cmd(b"c", b"CREATE Work")
    await a.cmd(b"i", b"NOTIFY SET (personal (MessageNew))")
    await a.send(b"i IDLE\r\n")     # the session is busy: the pusher cannot write
    assert await a.line() == b"+ idling\r\n"
    await a.send(b"DONE\r\n")
    assert await a.line() == b"i OK IDLE terminated\r\n"
    # Hold the session's write lock as a long command would, while 30 messages arrive.
    session = next(iter(runtime_sessions(runtime)))
    async with session.writing:
        for _ in range(30):
            await append(b, b"Work")
        notifier = session.notifier
        assert notifier is not None and len(notifier.dirty) <= 2
    v = await uidvalidity(runtime, "Work")
    assert await a.line() == b'* STATUS "Work" (MESSAGES 30 UIDNEXT 31 UIDVALIDITY %d)\r\n' % v
    await a.close()
    await b.close()


def runtime_sessions(runtime: ServerRuntime) -> list:  # noqa: ANN001 - test helper
    """The IMAP sessions with NOTIFY on, from the runtime's IMAP server."""
    server = runtime.started_services["rmail.server.imap"]
    assert isinstance(server, ImapServer)
    return [conn.session for conn in server.connections
            if conn.session is not None and conn.session.notifier is not None]
