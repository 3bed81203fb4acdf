"""Modified UTF-7, the response encoder and the state tables."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmail.server.imap import encode as e
from rmail.server.imap import commands as c
from rmail.server.imap import parser
from rmail.server.core import mutf7
from rmail.server.imap.protocol import State, allowed, capabilities

MUTF7 = [
    ("INBOX", "INBOX"),
    ("a&b", "a&-b"),
    ("&", "&-"),
    ("~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("caf\u00e9", "caf&AOk-"),
    ("\U0001f600", "&2D3eAA-"),
    ("Entw\u00fcrfe", "Entw&APw-rfe"),
]


@pytest.mark.parametrize("text, wire", MUTF7)
def test_mutf7_round_trip(text: str, wire: str) -> None:
    assert mutf7.encode(text) == wire
    assert mutf7.decode(wire) == text


@pytest.mark.parametrize("wire", [
    "&", "&Jjo", "&AGE-", "&U,BTFw-&ZeVnLIqe-", "&AOk", "caf\u00e9", "a\tb", "&!!-", "&AO-",
    "&2D0-",   # lone high surrogate
])
def test_mutf7_rejects(wire: str) -> None:
    with pytest.raises(mutf7.MUTF7Error):
        mutf7.decode(wire)


RESPONSES = [
    (e.Tagged("a1", "OK", "LOGIN completed"), b"a1 OK LOGIN completed\r\n"),
    (e.Tagged("a1", "NO", "too big", "TOOBIG"), b"a1 NO [TOOBIG] too big\r\n"),
    (e.Tagged("a1", "BAD", "evil\r\n* OK injected"), b"a1 BAD evil  * OK injected\r\n"),
    (e.Status("OK", "ready", "UIDVALIDITY 7"), b"* OK [UIDVALIDITY 7] ready\r\n"),
    (e.Status("BYE", "autologout"), b"* BYE autologout\r\n"),
    (e.Numbered(4, "EXISTS"), b"* 4 EXISTS\r\n"),
    (e.Numbered(2, "EXPUNGE"), b"* 2 EXPUNGE\r\n"),
    (e.Data("CAPABILITY", (e.Atom("IMAP4rev1"), e.Atom("IDLE"))), b"* CAPABILITY IMAP4rev1 IDLE\r\n"),
    (e.Data("FLAGS", ((e.Atom("\\Seen"), e.Atom("$Junk")),)), b"* FLAGS (\\Seen $Junk)\r\n"),
    (e.Data("LIST", ((e.Atom("\\HasNoChildren"),), "/", "Sent Items")),
     b'* LIST (\\HasNoChildren) "/" "Sent Items"\r\n'),
    (e.Data("SEARCH", (1, 4, 9)), b"* SEARCH 1 4 9\r\n"),
    (e.Data("SEARCH"), b"* SEARCH\r\n"),
    (e.Data("ID", (None,)), b"* ID NIL\r\n"),
    (e.Data("NAMESPACE", (((("", "/"),), None, None))), b'* NAMESPACE (("" "/")) NIL NIL\r\n'),
    (e.Fetch(1, (("UID", 7), ("FLAGS", ()))), b"* 1 FETCH (UID 7 FLAGS ())\r\n"),
    (e.Fetch(1, (("BODY[]", e.Literal(b"ab")),)), b"* 1 FETCH (BODY[] {2}\r\nab)\r\n"),
    (e.Fetch(1, (("X", 'say "hi" \\o/'),)), b'* 1 FETCH (X "say \\"hi\\" \\\\o/")\r\n'),
    (e.Fetch(1, (("X", "line\r\nbreak"),)), b"* 1 FETCH (X {11}\r\nline\r\nbreak)\r\n"),
    (e.Fetch(1, (("X", "\u00e9"),)), b"* 1 FETCH (X {2}\r\n\xc3\xa9)\r\n"),
    (e.Fetch(1, (("X", b"a\x00b"),)), b'* 1 FETCH (X "ab")\r\n'),  # NUL is never sent
    (e.Fetch(1, (("X", b"a\tb"),)), b'* 1 FETCH (X "a\tb")\r\n'),
    (e.Continuation(), b"+ Ready\r\n"),
    (e.Challenge(b""), b"+ \r\n"),
    (e.Challenge(b"Username:"), b"+ VXNlcm5hbWU6\r\n"),
    (e.Tagged("a", "OK", "done", e.Code("APPENDUID", (7, 42))), b"a OK [APPENDUID 7 42] done\r\n"),
    (e.Status("OK", "flags permitted", e.Code("PERMANENTFLAGS", ((e.Atom("\\Seen"), e.Atom("\\*")),))),
     b"* OK [PERMANENTFLAGS (\\Seen \\*)] flags permitted\r\n"),
    (e.Status("OK", "x", e.Code("PERMANENTFLAGS", ((),))), b"* OK [PERMANENTFLAGS ()] x\r\n"),
    (e.Tagged("a", "NO", "x", "BAD]CODE\r\n"), b"a NO [BADCODE] x\r\n"),
    (e.Tagged("a", "NO", ""), b"a NO done\r\n"),
]


@pytest.mark.parametrize("response, wire", RESPONSES, ids=[w[:30].decode(errors="replace")
                                                          for _, w in RESPONSES])
def test_encode(response: e.Response, wire: bytes) -> None:
    assert e.encode(response) == wire


def test_long_strings_go_as_literals() -> None:
    text = "x" * (e.MAX_QUOTED + 1)
    assert e.string(text).startswith(b"{%d}\r\n" % len(text))
    assert e.string("x" * e.MAX_QUOTED).startswith(b'"')


@pytest.mark.parametrize("bad", [True, -1, object()])
def test_encode_rejects_unencodable(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        e.encode(e.Data("X", (bad,)))  # type: ignore[arg-type]


STATE_CASES = [
    (State.NOT_AUTHENTICATED, c.Login("a", "u", "p"), True),
    (State.NOT_AUTHENTICATED, c.StartTLS("a"), True),
    (State.NOT_AUTHENTICATED, c.Id("a", None), True),
    (State.NOT_AUTHENTICATED, c.Select("a", "INBOX"), False),
    (State.NOT_AUTHENTICATED, c.Idle("a"), False),
    (State.AUTHENTICATED, c.Login("a", "u", "p"), False),
    (State.AUTHENTICATED, c.StartTLS("a"), False),
    (State.AUTHENTICATED, c.Select("a", "INBOX"), True),
    (State.AUTHENTICATED, c.Append("a", "INBOX", (), None, b""), True),
    (State.AUTHENTICATED, c.Fetch("a", parser.parse_seqset("1"), ()), False),
    (State.AUTHENTICATED, c.Close("a"), False),
    (State.SELECTED, c.Fetch("a", parser.parse_seqset("1"), ()), True),
    (State.SELECTED, c.UidExpunge("a", parser.parse_seqset("1")), True),
    (State.SELECTED, c.Unselect("a"), True),
    (State.SELECTED, c.Select("a", "INBOX"), True),
    (State.SELECTED, c.Authenticate("a", "PLAIN"), False),
    (State.LOGOUT, c.Noop("a"), False),
]


@pytest.mark.parametrize("state, command, ok", STATE_CASES,
                         ids=[f"{s.name}-{type(c).__name__}" for s, c, _ in STATE_CASES])
def test_state_tables(state: State, command: c.Command, ok: bool) -> None:
    assert allowed(state, command) is ok


ALWAYS = ("IMAP4rev1", "IMAP4rev2", "IDLE", "SPECIAL-USE", "NAMESPACE", "UIDPLUS", "MOVE", "ID",
          "ENABLE", "UNSELECT", "LITERAL+", "CONDSTORE", "QRESYNC")
SEARCH_EXTENSIONS = ("ESEARCH", "SEARCHRES", "CONTEXT=SEARCH", "WITHIN")
MAILBOX = ("LIST-EXTENDED", "LIST-STATUS", "CHILDREN", "CREATE-SPECIAL-USE", "STATUS=SIZE")
SORT_EXTENSIONS = ("SORT", "SORT=DISPLAY", "ESORT", "CONTEXT=SORT", "THREAD=ORDEREDSUBJECT",
                   "THREAD=REFERENCES")
#: Message extensions, after STATUS=SIZE and APPENDLIMIT=n.
MESSAGE = ("BINARY", "MULTIAPPEND", "CATENATE", "PREVIEW", "URLAUTH", "URLAUTH=BINARY", "OBJECTID", "SAVEDATE")


@pytest.mark.parametrize("configured, active, extra", [
    (False, False, ("AUTH=PLAIN", "AUTH=LOGIN", "SASL-IR")),
    (True, False, ("STARTTLS", "LOGINDISABLED")),
    (True, True, ("AUTH=PLAIN", "AUTH=LOGIN", "SASL-IR")),
])
def test_capabilities(configured: bool, active: bool, extra: tuple[str, ...]) -> None:
    assert capabilities(tls_configured=configured, tls_active=active) == \
        ALWAYS + SEARCH_EXTENSIONS + SORT_EXTENSIONS + MAILBOX + MESSAGE + extra
    # RFC 7889 §2 (a): the one limit, after the list every connection gets.
    assert capabilities(tls_configured=configured, tls_active=active, append_limit=1024) == (
        ALWAYS + SEARCH_EXTENSIONS + SORT_EXTENSIONS + MAILBOX + ("APPENDLIMIT=1024",) + MESSAGE
        + extra)


@pytest.mark.parametrize("configured, active", [(False, False), (True, False), (True, True)])
def test_capabilities_after_login(configured: bool, active: bool) -> None:
    """RFC 4959's SASL-IR goes with AUTH=, so not after login; the session extensions
    (COMPRESS, QUOTA, UTF8=ACCEPT) are listed after login only."""
    assert capabilities(tls_configured=configured, tls_active=active, authenticated=True) == (
        ALWAYS + SEARCH_EXTENSIONS + SORT_EXTENSIONS + MAILBOX + MESSAGE
        + ("COMPRESS=DEFLATE", "QUOTA", "QUOTA=RES-STORAGE", "UTF8=ACCEPT") + ("NOTIFY",))


def test_text_is_bounded_on_a_character_boundary() -> None:
    assert e.text("x" * 5000) == b"x" * e.MAX_TEXT
    cut = e.text("\u00e9" * 5000)       # two octets each: never half a character
    assert len(cut) == e.MAX_TEXT and cut.decode("utf-8") == "\u00e9" * (e.MAX_TEXT // 2)
    assert e.text("a\r\nb\x00c") == b"a  b c"


@pytest.mark.parametrize("numbers, text", [
    ([1], "1"), ([1, 2, 3], "1:3"), ([1, 3, 4, 5, 9], "1,3:5,9"), ([], ""), ([7, 9], "7,9"),
])
def test_sequence_set(numbers: list[int], text: str) -> None:
    assert e.sequence_set(numbers) == e.Atom(text)


@pytest.mark.parametrize("flags, recent, seq, uid", [
    (frozenset(), False, 1, None), (frozenset({"\\Seen", "$b", "$a", "\\Answered"}), True, 9, 4),
    (frozenset({"\\Draft", "\\Deleted", "\\Flagged"}), False, 3, 17),
])
def test_hot_path_builders_write_what_the_typed_responses_would(
        flags: frozenset[str], recent: bool, seq: int, uid: int | None) -> None:
    names = [f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft") if f in flags]
    names += sorted(f for f in flags if not f.startswith("\\")) + (["\\Recent"] if recent else [])
    atoms = tuple(e.Atom(n) for n in names)
    items = ((("UID", uid),) if uid is not None else ()) + (("FLAGS", atoms),)
    assert e.fetch_flags(seq, flags, recent, uid) == e.encode(e.Fetch(seq, items))
    assert e.numbered([5, 3], "EXPUNGE") == e.encode_all([e.Numbered(5, "EXPUNGE"),
                                                         e.Numbered(3, "EXPUNGE")])
    assert e.fetch_response(seq, b"(UID 1)") == e.encode(e.Fetch(seq, (("UID", 1),)))
    assert e.literal(b"ab") == b"{2}\r\nab" and e.literal_prefix(0) == b"{0}\r\n"


def test_search_response_in_pieces() -> None:
    numbers = list(range(1, 3 * e.SEARCH_PIECE))
    pieces = list(e.search_response(numbers))
    assert len(pieces) == 5
    assert b"".join(pieces) == e.encode(e.Data("SEARCH", tuple(numbers)))
    assert b"".join(e.search_response([])) == b"* SEARCH\r\n"


def test_date_time() -> None:
    assert e.date_time(1709629687.0) == b'"05-Mar-2024 09:08:07 +0000"'
    assert e.date_time(0.0) == b'"01-Jan-1970 00:00:00 +0000"'


def _text_rule(value: str) -> bytes:
    """The text rule written plainly: what `encode.text` must give for every input."""
    data = (re.sub(r"[\x00\r\n]", " ", value).strip() or "done").encode("utf-8", "replace")
    return data[:e.MAX_TEXT].decode("utf-8", "ignore").encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=1100) | st.text(alphabet=st.characters(max_codepoint=0x7f), max_size=1100))
def test_text_fast_path_agrees_with_the_rule(value: str) -> None:
    assert e.text(value) == _text_rule(value)


def test_flag_orders_name_the_stored_system_flags() -> None:
    from rmail.server.core.model import SYSTEM_FLAGS
    assert set(e.FETCH_ORDER) == set(e.FLAGS_ORDER) == set(SYSTEM_FLAGS)
    assert len(e.FETCH_ORDER) == len(e.FLAGS_ORDER) == len(SYSTEM_FLAGS)
