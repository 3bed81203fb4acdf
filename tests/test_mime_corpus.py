"""Corpus tests: every imaptest message parses, every part can be fetched, IMAP syntax is balanced.

Exact expectations come from imaptest's scripts (src/tests/fetch-*) for Dovecot.
"""

from __future__ import annotations

import mailbox
from pathlib import Path

import pytest

from rmail.server.core.mime import body_section, message_view, parse_message
from rmail.server.core.mime.tree import Part, parse_tree

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(CORPUS.glob("*.mbox"))


def messages(path: Path) -> list[bytes]:
    box = mailbox.mbox(str(path), create=False)
    try:
        # imaptest APPENDs with CRLF line ends; sizes in its scripts assume that.
        return [box.get_bytes(key).replace(b"\n", b"\r\n") for key in box.keys()]
    finally:
        box.close()


def balanced(value: bytes) -> bool:
    """True when parentheses balance outside quoted strings and literals (RFC 3501 §4)."""
    depth, i, n = 0, 0, len(value)
    while i < n:
        c = value[i : i + 1]
        if c == b'"':
            i += 1
            while i < n and value[i : i + 1] != b'"':
                i += 2 if value[i : i + 1] == b"\\" else 1
            if i >= n:
                return False
        elif c == b"{":
            close = value.index(b"}\r\n", i)
            i = close + 3 + int(value[i + 1 : close]) - 1
        elif c == b"(":
            depth += 1
        elif c == b")":
            depth -= 1
            if depth < 0:
                return False
        i += 1
    return depth == 0


def part_numbers(body: Part, prefix: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    """All section part numbers below a message whose body part is *body* (RFC 3501 §6.4.5)."""
    if body.multipart:
        return _below_multipart(body, prefix)
    out = [prefix + (1,)]
    if body.message:
        out += part_numbers(body.children[0], prefix + (1,))
    return out


def _below_multipart(node: Part, prefix: tuple[int, ...]) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = []
    for i, child in enumerate(node.children, 1):
        number = prefix + (i,)
        out.append(number)
        if child.message:
            out += part_numbers(child.children[0], number)
        elif child.multipart:
            out += _below_multipart(child, number)
    return out


def test_corpus_present() -> None:
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_corpus_message(path: Path) -> None:
    msgs = messages(path)
    assert msgs
    for data in msgs:
        parsed = parse_message(data)
        assert balanced(parsed.envelope), parsed.envelope
        assert balanced(parsed.bodystructure), parsed.bodystructure
        assert balanced(parsed.body), parsed.body
        assert parsed.envelope.startswith(b"(") and parsed.bodystructure.startswith(b"(")
        message_view(data)
        numbers = part_numbers(parse_tree(data))
        assert numbers and numbers[0] == (1,), "every message has part 1"
        for number in numbers:
            body = body_section(data, number, None)
            assert body is not None, number
            assert body in data
            mime = body_section(data, number, "MIME")
            assert mime is not None and mime in data


def test_imaptest_fetch_envelope() -> None:
    got = [parse_message(m).envelope for m in messages(CORPUS / "fetch-envelope.mbox")]
    date = b'"Thu, 15 Feb 2007 01:02:03 +0200"'
    user = b'((NIL NIL "user" "domain"))'
    real = b'(("Real Name" NIL "user" "domain"))'
    route = b'((NIL "@route" "user" "domain"))'
    assert got == [
        b"(" + date + b' "subject header" (("From Real" NIL "fromuser" "fromdomain.org")) '
        b'(("Sender Real" NIL "senderuser" "senderdomain.org")) '
        b'(("ReplyTo Real" NIL "replytouser" "replytodomain.org")) (("To Real" NIL "touser" "todomain.org")) '
        b'(("Cc Real" NIL "ccuser" "ccdomain.org")) (("Bcc Real" NIL "bccuser" "bccdomain.org")) '
        b'"<reply@to.id>" "<msg@id>")',
        b"(" + date + b" NIL " + b" ".join([user] * 3) + b" NIL NIL NIL NIL NIL)",
        b"(" + date + b" NIL " + b" ".join([user] * 3) + b" NIL NIL NIL NIL NIL)",
        b"(" + date + b" NIL " + b" ".join([real] * 3) + b' ((NIL NIL "group" NIL) (NIL NIL "g1" "d1.org") '
        b'(NIL NIL "g2" "d2.org") (NIL NIL NIL NIL) (NIL NIL "group2" NIL) (NIL NIL "g3" "d3.org") '
        b'(NIL NIL NIL NIL)) ((NIL NIL "group" NIL) (NIL NIL NIL NIL) (NIL NIL "group2" NIL) '
        b"(NIL NIL NIL NIL)) NIL NIL NIL)",
        b"(" + date + b" NIL " + b" ".join([real] * 3) + b" NIL NIL NIL NIL NIL)",
        b"(" + date + b" NIL " + b" ".join([route] * 3) + b" NIL NIL NIL NIL NIL)",
    ]


def test_imaptest_fetch_bodystructure() -> None:
    # imaptest compares case-insensitively; Dovecot writes the message's spelling.
    (data,) = messages(CORPUS / "fetch-bodystructure.mbox")
    assert parse_message(data).body == (
        b'(("text" "x-myown" ("charset" "us-ascii") NIL NIL "7bit" 7 1) "mixed")'
    )


def _sections(name: str) -> bytes:
    (data,) = messages(CORPUS / name)
    return data


SECTION_CASES = [
    ("fetch-body-mime.mbox", (1,), None, (), b"hello\r\n"),
    ("fetch-body-mime.mbox", (1,), "MIME", (), b"Content-Type: text/x-myown; charset=us-ascii\r\n\r\n"),
    ("fetch-body-mime.mbox", (2,), "MIME", (), b"Content-Type: message/rfc822\r\n\r\n"),
    (
        "fetch-body-mime.mbox",
        (2,),
        "HEADER",
        (),
        b"From: sub@domain.org\r\nDate: Sun, 12 Aug 2012 12:34:56 +0300\r\nSubject: submsg\r\n"
        b'Content-Type: multipart/alternative; boundary="sub1"\r\n\r\n',
    ),
    (
        "fetch-body-mime.mbox",
        (2,),
        "HEADER.FIELDS",
        ("from", "subject", "X-foo"),
        b"From: sub@domain.org\r\nSubject: submsg\r\n\r\n",
    ),
    (
        "fetch-body-mime.mbox",
        (2,),
        "HEADER.FIELDS.NOT",
        ("from", "subject", "X-foo"),
        b"Date: Sun, 12 Aug 2012 12:34:56 +0300\r\n"
        b'Content-Type: multipart/alternative; boundary="sub1"\r\n\r\n',
    ),
    (
        "fetch-body-mime.mbox",
        (2,),
        "TEXT",
        (),
        b"Sub MIME prologue\r\n--sub1\r\nContent-Type: text/html\r\n\r\n<p>Hello world</p>\r\n\r\n"
        b"--sub1\r\nContent-Type: text/plain\r\n\r\nHello another world\r\n\r\n--sub1--\r\n"
        b"Sub MIME epilogue\r\n",
    ),
    ("fetch-body-mime.mbox", (2, 1), "MIME", (), b"Content-Type: text/html\r\n\r\n"),
    ("fetch-body-mime.mbox", (2, 1), None, (), b"<p>Hello world</p>\r\n"),
    ("fetch-body-mime.mbox", (2, 2), None, (), b"Hello another world\r\n"),
    ("fetch-body-message-rfc822.mbox", (1,), "TEXT", (), b"Hello world\r\n"),
    (
        "fetch-body-message-rfc822.mbox",
        (1,),
        "HEADER.FIELDS.NOT",
        ("from", "subject", "X-foo"),
        b"Date: Sun, 12 Aug 2012 12:34:56 +0300\r\n\r\n",
    ),
    ("fetch-body-message-rfc822-x2.mbox", (1, 1, 1), None, (), b"Hello world\r\n"),
    (
        "fetch-body-message-rfc822-x2.mbox",
        (1,),
        "HEADER",
        (),
        b"From: user2@domain.org\r\nDate: Fri, 23 Mar 2007 11:22:33 +0200\r\nMime-Version: 1.0\r\n"
        b"Content-Type: message/rfc822\r\n\r\n",
    ),
    (
        "fetch-body-message-rfc822-x2.mbox",
        (1, 1),
        None,
        (),
        b"From: sub@domain.org\r\nDate: Sun, 12 Aug 2012 12:34:56 +0300\r\nSubject: submsg\r\n\r\n"
        b"Hello world\r\n",
    ),
    ("fetch-body-message-rfc822-x2.mbox", (1, 1), "TEXT", (), b"Hello world\r\n"),
    (
        "fetch-body-message-rfc822-mime.mbox",
        (1, 1),
        None,
        (),
        b"From: m1@example.com\r\nSubject: m1\r\n\r\nm1 body\r\n",
    ),
    ("fetch-body-message-rfc822-mime.mbox", (1, 1), "MIME", (), b"\r\n"),
    ("fetch-body-message-rfc822-mime.mbox", (1, 1), "TEXT", (), b"m1 body\r\n"),
    ("fetch-body-message-rfc822-mime.mbox", (1, 2), "MIME", (), b"X-Mime: m2 header\r\n\r\n"),
    (
        "fetch-body-message-rfc822-mime.mbox",
        (1, 2),
        "HEADER",
        (),
        b"From: m2@example.com\r\nSubject: m2\r\n\r\n",
    ),
]


@pytest.mark.parametrize(("name", "part", "spec", "fields", "expected"), SECTION_CASES)
def test_imaptest_sections(
    name: str, part: tuple[int, ...], spec: str | None, fields: tuple[str, ...], expected: bytes
) -> None:
    assert body_section(_sections(name), part, spec, fields) == expected


def test_imaptest_fetch_body_header_fields() -> None:
    first = messages(CORPUS / "fetch-body.mbox")[0]
    assert body_section(first, (), "HEADER.FIELDS", ("from",)) == b"From: User1 <user1@domain.org>\r\n\r\n"
    assert body_section(first, (), "HEADER.FIELDS", ("from", "subject")) == (
        b"From: User1 <user1@domain.org>\r\nSubject: s1\r\n\r\n"
    )
    assert body_section(first, (), "HEADER.FIELDS", ("xyz",)) == b"\r\n"


def test_nil_search_text() -> None:
    (data,) = messages(CORPUS / "nil.mbox")
    parsed = parse_message(data)
    assert parsed.subject == "NiL" and "nil" in parsed.search_text
