"""Table tests of the pure IMAP response parsing."""

from __future__ import annotations

import pytest

from rmail.client.imapwire import (
    ParseError,
    decode_mutf7,
    encode_mutf7,
    join_responses,
    mailbox_arg,
    parse_fetch,
    parse_list,
    parse_status,
    parse_uids,
    parse_values,
    quote,
    summary_from_fetch,
    uid_set,
)
from rmail.client.model import Address


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"A B", ["A", "B"]),
        (b'"a \\"q\\" \\\\ b"', ['a "q" \\ b']),
        (b"NIL nil", [None, None]),
        (b"(1 (2 3) ())", [["1", ["2", "3"], []]]),
        (b"{5}\r\nhello rest", [b"hello", "rest"]),
        (b"{3}abc", [b"abc"]),
        (b"BODY[HEADER.FIELDS (A B)] x", ["BODY[HEADER.FIELDS (A B)]", "x"]),
        (b"(\\Seen \\Flagged $Junk)", [["\\Seen", "\\Flagged", "$Junk"]]),
    ],
    ids=["atoms", "quoted-escapes", "nil", "nested", "literal-crlf", "literal-bare", "section", "flags"],
)
def test_parse_values(data: bytes, expected: list) -> None:
    assert parse_values(data) == expected


@pytest.mark.parametrize("bad", [b"(a", b"a)", b'"open', b"{10}\r\nshort", b"{x}"])
def test_parse_values_rejects_malformed(bad: bytes) -> None:
    with pytest.raises(ParseError):
        parse_values(bad)


def test_join_responses_rebuilds_literal_fragments() -> None:
    data = [
        (b"1 (UID 7 BODY[] {5}", b"hello"),
        b")",
        b"2 (UID 8 FLAGS (\\Seen))",
        (b"3 (UID 9 BODY[HEADER.FIELDS (REFERENCES)] {2}", b"\r\n"),
        (b" ENVELOPE (NIL {3}", b"sub"),
        b" NIL NIL NIL NIL NIL NIL NIL NIL))",
    ]
    joined = join_responses(data)
    assert len(joined) == 3
    seq, items = parse_fetch(joined[0])
    assert (seq, items) == (1, {"UID": "7", "BODY[]": b"hello"})
    assert parse_fetch(joined[1])[1]["FLAGS"] == ["\\Seen"]
    items = parse_fetch(joined[2])[1]
    assert items["BODY[HEADER.FIELDS]"] == b"\r\n"
    assert items["ENVELOPE"][1] == b"sub"


ENVELOPE_RESPONSE = (
    b'12 (UID 42 FLAGS (\\Seen \\Answered) RFC822.SIZE 1234 ENVELOPE ("Mon, 03 Feb 2025 10:00:00 +0000" '
    b'"=?utf-8?q?Gr=C3=BC=C3=9Fe?=" (("Bob B." NIL "bob" "example.com")) (("Bob B." NIL "bob" "example.com")) '
    b'NIL ((NIL NIL "alice" "example.com") (NIL NIL "team" NIL) ("Carol" NIL "carol" "example.org") (NIL NIL NIL NIL)) '
    b'NIL NIL "<parent@example.com>" "<m42@example.com>") '
    b"BODY[HEADER.FIELDS (REFERENCES IN-REPLY-TO)] {57}\r\n"
    b"References: <root@example.com>\r\n <parent@example.com>\r\n\r\n)"
)


def test_summary_from_envelope() -> None:
    _seq, items = parse_fetch(ENVELOPE_RESPONSE)
    s = summary_from_fetch(items)
    assert s is not None
    assert s.uid == 42 and s.size == 1234 and s.seen and "\\Answered" in s.flags
    assert s.subject == "Grüße"
    assert s.sender == (Address("Bob B.", "bob@example.com"),)
    # The group "team:" markers are dropped, members kept.
    assert s.to == (Address("", "alice@example.com"), Address("Carol", "carol@example.org"))
    assert s.in_reply_to == "<parent@example.com>" and s.message_id == "<m42@example.com>"
    assert s.references == ("<root@example.com>", "<parent@example.com>")
    assert s.timestamp == 1738576800.0


def test_unsolicited_fetch_is_ignored() -> None:
    assert summary_from_fetch(parse_fetch(b"3 (FLAGS (\\Seen))")[1]) is None


def test_list_and_status() -> None:
    assert parse_list(b'(\\HasNoChildren \\Sent) "/" "Sent"') == (frozenset({"\\HasNoChildren", "\\Sent"}), "/", "Sent")
    assert parse_list(b'() "." INBOX.&AOQ-rger') == (frozenset(), ".", "INBOX.ärger")
    assert parse_list(b'() "/" {4}\r\na"b/') == (frozenset(), "/", 'a"b/')
    assert parse_status(b'"INBOX" (MESSAGES 3 UNSEEN 1)') == {"MESSAGES": 3, "UNSEEN": 1}


def test_uids_and_sets() -> None:
    assert parse_uids([b"5 1 3 2"]) == [1, 2, 3, 5]
    assert parse_uids([b""]) == []
    assert uid_set([5, 1, 2, 3, 9, 10]) == "1:3,5,9:10"
    with pytest.raises(ValueError):
        uid_set([])


@pytest.mark.parametrize(
    ("name", "wire"),
    [("INBOX", "INBOX"), ("Entwürfe", "Entw&APw-rfe"), ("a&b", "a&-b"), ("日本語", "&ZeVnLIqe-"), ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-")],
)
def test_modified_utf7_round_trip(name: str, wire: str) -> None:
    assert encode_mutf7(name) == wire
    assert decode_mutf7(wire) == name


def test_quoting() -> None:
    assert quote('a "b" \\c') == '"a \\"b\\" \\\\c"'
    assert mailbox_arg("Entwürfe") == '"Entw&APw-rfe"'
    with pytest.raises(ValueError):
        quote("a\r\nb")
