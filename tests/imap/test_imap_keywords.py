"""FLAGS grows before a keyword is used (RFC 3501 §7.1, §7.2.6).

A client learns the keywords of the selected mailbox from `* FLAGS` and
`* OK [PERMANENTFLAGS ...]`; a FETCH that shows a keyword it was never told of is a protocol
error (imaptest: "Keyword used without being in FLAGS"). Exact-byte transcripts of each way a
keyword reaches a session (its own STORE, another session's STORE, APPEND into the selected
mailbox, mail arriving from outside IMAP), and a property over random two-session histories:
no response mentions a keyword before the session has announced it.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmail.server.runtime import ServerRuntime

from .conftest import RawClient

SYSTEM = b"\\Answered \\Flagged \\Deleted \\Seen \\Draft"


def msg(n: int) -> bytes:
    return b"Subject: m%d\r\n\r\nbody %d\r\n" % (n, n)


def flag_lines(keywords: bytes = b"", *, readonly: bool = False) -> bytes:
    """The FLAGS and PERMANENTFLAGS pair as rmail sends it, keywords space-separated."""
    flags = SYSTEM + (b" " + keywords if keywords else b"")
    perm = b"()" if readonly else b"(" + flags + b" \\*)"
    return (b"* FLAGS (" + flags + b")\r\n"
            b"* OK [PERMANENTFLAGS " + perm + b"] flags permitted\r\n")


async def append(c: RawClient, tag: bytes, n: int, flags: bytes = b"") -> bytes:
    flag_part = b"(" + flags + b") " if flags else b""
    return await c.cmd(tag, b"APPEND INBOX %b{%d+}\r\n%b" % (flag_part, len(msg(n)), msg(n)))


async def two_sessions(runtime: ServerRuntime, messages: int) -> tuple[RawClient, RawClient, bytes]:
    """A and B logged in as alice, INBOX holding `messages` messages, A (which holds their
    \\Recent) then B selected; returns the UIDVALIDITY too."""
    port = runtime.port("imap")
    a = await RawClient.connect(port)
    b = await RawClient.connect(port)
    await a.login()
    await b.login()
    for n in range(1, messages + 1):
        assert b"OK [APPENDUID" in await append(a, b"p%d" % n, n)
    sel = await a.cmd(b"a0", b"SELECT INBOX")
    assert flag_lines() in sel
    await b.cmd(b"b0", b"SELECT INBOX")
    uv = re.search(rb"UIDVALIDITY (\d+)", sel).group(1)
    return a, b, uv


async def test_store_by_another_session_announces_the_keyword_first(
        runtime: ServerRuntime) -> None:
    a, b, _ = await two_sessions(runtime, 2)
    # B's own STORE: the grown FLAGS before its FETCH response, once.
    assert await b.cmd(b"b1", b"STORE 1 +FLAGS ($NewKeyword)") == (
        flag_lines(b"$NewKeyword")
        + b"* 1 FETCH (FLAGS ($NewKeyword))\r\n"
        b"b1 OK STORE completed\r\n")
    assert await b.cmd(b"b2", b"STORE 2 +FLAGS ($NewKeyword)") == (
        b"* 2 FETCH (FLAGS ($NewKeyword))\r\nb2 OK STORE completed\r\n")
    # A hears of both changes at its next command: FLAGS, PERMANENTFLAGS, then the FETCHes.
    assert await a.cmd(b"a1", b"NOOP") == (
        flag_lines(b"$NewKeyword")
        + b"* 1 FETCH (UID 1 FLAGS ($NewKeyword \\Recent))\r\n"
        b"* 2 FETCH (UID 2 FLAGS ($NewKeyword \\Recent))\r\n"
        b"a1 OK NOOP completed\r\n")
    # A's own STORE of a second keyword; .SILENT still announces it (a FETCH could show it).
    assert await a.cmd(b"a2", b"STORE 1 +FLAGS.SILENT (Work)") == (
        flag_lines(b"$NewKeyword Work") + b"a2 OK STORE completed\r\n")
    assert await a.cmd(b"a3", b"FETCH 1 FLAGS") == (
        b"* 1 FETCH (FLAGS ($NewKeyword Work \\Recent))\r\na3 OK FETCH completed\r\n")
    assert await b.cmd(b"b3", b"NOOP") == (
        flag_lines(b"$NewKeyword Work")
        + b"* 1 FETCH (UID 1 FLAGS ($NewKeyword Work))\r\nb3 OK NOOP completed\r\n")
    # Removing the keyword everywhere and expunging does not shrink the list (as Dovecot).
    assert await a.cmd(b"a4", b"STORE 1:2 -FLAGS.SILENT ($NewKeyword Work)") == (
        b"a4 OK STORE completed\r\n")
    assert await a.cmd(b"a5", b"STORE 1:2 FLAGS (\\Deleted $NewKeyword)") == (
        b"* 1 FETCH (FLAGS (\\Deleted $NewKeyword \\Recent))\r\n"
        b"* 2 FETCH (FLAGS (\\Deleted $NewKeyword \\Recent))\r\n"
        b"a5 OK STORE completed\r\n")
    assert await a.cmd(b"a6", b"EXPUNGE") == (
        b"* 2 EXPUNGE\r\n* 1 EXPUNGE\r\na6 OK EXPUNGE completed\r\n")
    for c in (a, b):
        await c.cmd(b"z", b"LOGOUT")
        await c.close()


async def test_append_with_a_keyword_into_the_selected_mailbox(runtime: ServerRuntime) -> None:
    a, b, uv = await two_sessions(runtime, 1)
    # EXISTS first, then the grown FLAGS; the FETCH the client then asks for uses it.
    assert await append(a, b"a1", 2, b"\\Seen $Label1") == (
        b"* 2 EXISTS\r\n* 2 RECENT\r\n"
        + flag_lines(b"$Label1")
        + b"a1 OK [APPENDUID " + uv + b" 2] APPEND completed\r\n")
    assert await a.cmd(b"a2", b"FETCH 2 FLAGS") == (
        b"* 2 FETCH (FLAGS (\\Seen $Label1 \\Recent))\r\na2 OK FETCH completed\r\n")
    # B learns of the new message and its keyword the same way at its next command.
    assert await b.cmd(b"b1", b"NOOP") == (
        b"* 2 EXISTS\r\n* 0 RECENT\r\n" + flag_lines(b"$Label1") + b"b1 OK NOOP completed\r\n")
    assert await b.cmd(b"b2", b"UID FETCH 2 FLAGS") == (
        b"* 2 FETCH (UID 2 FLAGS (\\Seen $Label1))\r\nb2 OK FETCH completed\r\n")
    # A keyword the session already knows is not announced again.
    assert await append(b, b"b3", 3, b"$Label1") == (
        b"* 3 EXISTS\r\n* 1 RECENT\r\nb3 OK [APPENDUID " + uv + b" 3] APPEND completed\r\n")
    for c in (a, b):
        await c.cmd(b"z", b"LOGOUT")
        await c.close()


async def test_fetch_of_a_keyword_set_by_another_session(runtime: ServerRuntime) -> None:
    a, b, _ = await two_sessions(runtime, 1)
    assert await b.cmd(b"b1", b"STORE 1 +FLAGS.SILENT ($Forwarded)") == (
        flag_lines(b"$Forwarded") + b"b1 OK STORE completed\r\n")
    # FETCH answers from A's view as it was when the command began; the change and the
    # FLAGS that announces its keyword follow before the tagged reply, in that order.
    assert await a.cmd(b"a1", b"FETCH 1 FLAGS") == (
        b"* 1 FETCH (FLAGS (\\Recent))\r\n"
        + flag_lines(b"$Forwarded")
        + b"* 1 FETCH (UID 1 FLAGS ($Forwarded \\Recent))\r\n"
        b"a1 OK FETCH completed\r\n")
    assert await a.cmd(b"a2", b"FETCH 1 FLAGS") == (
        b"* 1 FETCH (FLAGS ($Forwarded \\Recent))\r\na2 OK FETCH completed\r\n")
    for c in (a, b):
        await c.cmd(b"z", b"LOGOUT")
        await c.close()


async def test_mail_from_outside_with_a_keyword_reaches_idle_and_examine(
        runtime: ServerRuntime) -> None:
    account = await runtime.accounts.get_user("alice@example.com")
    inbox = await runtime.store.get_mailbox(account.id, "INBOX")
    await runtime.store.append(inbox.id, msg(1), ["$Old"])
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    sel = await c.cmd(b"e", b"EXAMINE INBOX")
    assert flag_lines(b"$Old", readonly=True) in sel
    await c.send(b"i IDLE\r\n")
    assert await c.line() == b"+ idling\r\n"
    # e.g. the REST API or a filter delivering with a keyword: EXISTS, RECENT, then FLAGS
    # (a read-only session's PERMANENTFLAGS stays empty).
    await runtime.store.append(inbox.id, msg(2), ["$Junk", "$Old"])
    assert await c.line(timeout=2) == b"* 2 EXISTS\r\n"
    assert await c.line(timeout=2) == b"* 2 RECENT\r\n"
    assert await c.line(timeout=2) == b"* FLAGS (" + SYSTEM + b" $Junk $Old)\r\n"
    assert await c.line(timeout=2) == b"* OK [PERMANENTFLAGS ()] flags permitted\r\n"
    await c.send(b"DONE\r\n")
    assert await c.line() == b"i OK IDLE terminated\r\n"
    assert await c.cmd(b"f", b"FETCH 2 FLAGS") == (
        b"* 2 FETCH (FLAGS ($Junk $Old \\Recent))\r\nf OK FETCH completed\r\n")
    await c.cmd(b"z", b"LOGOUT")
    await c.close()


# -- property: never a keyword before its FLAGS ------------------------------------------------

_FLAG_LIST = re.compile(rb"FLAGS \(([^)]*)\)")


def _keywords(flag_list: bytes) -> set[bytes]:
    return {f for f in flag_list.split() if not f.startswith(b"\\")}


class Announced:
    """Follows one session's responses the way imaptest does: `* FLAGS` sets the keywords the
    client knows; any other flag list may use only those."""

    def __init__(self) -> None:
        self.known: set[bytes] | None = None
        self.lines = 0

    def feed(self, data: bytes) -> None:
        for line in data.split(b"\r\n"):
            self.lines += 1
            m = re.fullmatch(rb"\* FLAGS \(([^)]*)\)", line)
            if m:
                self.known = _keywords(m.group(1))
                continue
            m = re.match(rb"\* OK \[PERMANENTFLAGS \(([^)]*)\)\]", line)
            if m:
                assert self.known is not None
                assert _keywords(m.group(1)) - {b"\\*"} <= self.known, line
                continue
            for flags in _FLAG_LIST.findall(line):
                assert self.known is not None, line
                unknown = _keywords(flags) - self.known
                assert not unknown, f"{line!r} uses {unknown} before FLAGS announced it"


FLAGS = st.lists(st.sampled_from(["$A", "$B", "Work", "$Junk", "\\Seen", "\\Deleted"]),
                 max_size=3, unique=True)
OP = st.one_of(
    st.tuples(st.just("store"), st.integers(0, 1), st.integers(1, 4),
              st.sampled_from(["+FLAGS", "-FLAGS", "FLAGS", "+FLAGS.SILENT"]), FLAGS),
    st.tuples(st.just("append"), st.integers(0, 1), FLAGS),
    st.tuples(st.just("fetch"), st.integers(0, 1)),
    st.tuples(st.just("noop"), st.integers(0, 1)),
    st.tuples(st.just("expunge"), st.integers(0, 1)),
    st.tuples(st.just("outside"), FLAGS),
    st.tuples(st.just("select"), st.integers(0, 1), st.booleans()),
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OP, min_size=1, max_size=12))
async def test_no_keyword_before_flags(runtime: ServerRuntime, ops: list[tuple]) -> None:
    # One live server for all examples; each example gets its own mailbox and sessions.
    account = await runtime.accounts.get_user("alice@example.com")
    port = runtime.port("imap")
    existing = await runtime.store.list_mailboxes(account.id)
    name = b"k%d" % len(existing)
    sessions = [await RawClient.connect(port), await RawClient.connect(port)]
    seen = [Announced(), Announced()]
    try:
        await sessions[0].login()
        await sessions[1].login()
        assert b"OK" in await sessions[0].cmd(b"c", b"CREATE " + name)
        box = await runtime.store.get_mailbox(account.id, name.decode())
        await runtime.store.append(box.id, msg(0), ["$Seed"])
        for i, c in enumerate(sessions):
            seen[i].feed(await c.cmd(b"s", b"SELECT " + name))
        appended = 1
        for step, op in enumerate(ops):
            tag = b"t%d" % step
            kind = op[0]
            if kind == "outside":
                await runtime.store.append(box.id, msg(step), op[1])
                appended += 1
                continue
            i = op[1]
            c = sessions[i]
            if kind == "store":
                _, _, uid, mode, flags = op
                reply = await c.cmd(tag, b"UID STORE %d %b (%b)" % (
                    min(uid, appended), mode.encode(), " ".join(flags).encode()))
            elif kind == "append":
                data = msg(step)
                reply = await c.cmd(tag, b"APPEND %b (%b) {%d+}\r\n%b" % (
                    name, " ".join(op[2]).encode(), len(data), data))
                appended += 1
            elif kind == "fetch":
                reply = await c.cmd(tag, b"UID FETCH 1:* (UID FLAGS)")
            elif kind == "noop":
                reply = await c.cmd(tag, b"NOOP")
            elif kind == "expunge":
                reply = await c.cmd(tag, b"EXPUNGE")
            else:
                reply = await c.cmd(tag, (b"EXAMINE " if op[2] else b"SELECT ") + name)
            seen[i].feed(reply)
        for i, c in enumerate(sessions):
            seen[i].feed(await c.cmd(b"n", b"NOOP"))
            seen[i].feed(await c.cmd(b"f", b"UID FETCH 1:* FLAGS"))
        assert all(s.lines > 0 for s in seen)
    finally:
        for c in sessions:
            await c.close()
