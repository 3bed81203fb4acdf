"""Unit tests for rmail.server.core.mime: tables of messages with exact IMAP output (RFC 3501 §7.4.2)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmail.server.core.mime import (
    MAX_DEPTH,
    MAX_PARTS,
    body_section,
    header_section,
    message_view,
    parse_message,
    part_content,
    text_section,
)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


SIMPLE = crlf(
    "From: Fred Foobar <foobar@Blurdybloop.example>\n"
    "Date: Mon, 7 Feb 1994 21:52:25 -0800\n"
    "Subject: afternoon meeting\n"
    "To: mooch@owatagu.example\n"
    "Message-Id: <B27397-0100000@Blurdybloop.example>\n"
    "\n"
    "Hello Joe, do you think we can meet at 3:30 tomorrow?\n"
)

ALTERNATIVE = crlf(
    "From: a@example.org\n"
    "Subject: alt\n"
    'Content-Type: multipart/alternative; boundary="b1"\n'
    "\n"
    "preamble\n"
    "--b1\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "Caf=C3=A9 time\n"
    "--b1\n"
    "Content-Type: text/html; charset=utf-8\n"
    "\n"
    "<p>Caf&eacute; <b>time</b></p><script>evil()</script>\n"
    "--b1--\n"
    "epilogue\n"
)

MIXED = crlf(
    "From: a@example.org\n"
    "To: b@example.org\n"
    "Subject: report\n"
    "Content-Type: multipart/mixed; boundary=XYZ\n"
    "\n"
    "--XYZ\n"
    "\n"
    "See attached.\n"
    "--XYZ\n"
    'Content-Type: application/pdf; name="r.pdf"\n'
    "Content-Transfer-Encoding: base64\n"
    'Content-Disposition: attachment; filename="report.pdf"\n'
    "Content-ID: <pdf1@x>\n"
    "Content-Description: The report\n"
    "Content-Language: en, de\n"
    "Content-Location: http://x/r.pdf\n"
    "\n"
    "JVBERi0xLjQK\n"
    "--XYZ--\n"
)

NESTED = crlf(
    "From: outer@example.org\n"
    "Subject: fwd\n"
    "Content-Type: multipart/mixed; boundary=o\n"
    "\n"
    "--o\n"
    "Content-Type: text/plain\n"
    "\n"
    "see below\n"
    "--o\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "From: inner@example.org\n"
    "Subject: inner\n"
    "\n"
    "inner body\n"
    "--o--\n"
)

ENCODED = crlf(
    "From: =?utf-8?q?J=C3=B6rg?= <j@example.org>\n"
    "To: =?iso-8859-1?b?SvZyZw==?= <k@example.org>, plain@example.org\n"
    "Subject: =?utf-8?B?w6l0w6k=?=\n"
    " =?utf-8?q?_d=C3=A9j=C3=A0?=\n"
    "\n"
    "body\n"
)

GROUPS = crlf(
    "From: user@domain (Real Name)\n"
    "To: group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;\n"
    "Cc: group:;, group2: (foo) ;\n"
    "\n"
    "body\n"
)


ENVELOPES = [
    pytest.param(
        SIMPLE,
        b'("Mon, 7 Feb 1994 21:52:25 -0800" "afternoon meeting" '
        b'(("Fred Foobar" NIL "foobar" "Blurdybloop.example")) '
        b'(("Fred Foobar" NIL "foobar" "Blurdybloop.example")) '
        b'(("Fred Foobar" NIL "foobar" "Blurdybloop.example")) '
        b'((NIL NIL "mooch" "owatagu.example")) NIL NIL NIL '
        b'"<B27397-0100000@Blurdybloop.example>")',
        id="rfc3501-example",
    ),
    pytest.param(
        b"\r\nbody only\r\n",
        b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
        id="missing-headers",
    ),
    pytest.param(
        GROUPS,
        b'(NIL NIL (("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) '
        b'(("Real Name" NIL "user" "domain")) '
        b'((NIL NIL "group" NIL) (NIL NIL "g1" "d1.org") (NIL NIL "g2" "d2.org") (NIL NIL NIL NIL) '
        b'(NIL NIL "group2" NIL) (NIL NIL "g3" "d3.org") (NIL NIL NIL NIL)) '
        b'((NIL NIL "group" NIL) (NIL NIL NIL NIL) (NIL NIL "group2" NIL) (NIL NIL NIL NIL)) '
        b"NIL NIL NIL)",
        id="groups",
    ),
    pytest.param(
        ENCODED,
        b'(NIL "=?utf-8?B?w6l0w6k=?= =?utf-8?q?_d=C3=A9j=C3=A0?=" '
        b'(("=?utf-8?q?J=C3=B6rg?=" NIL "j" "example.org")) '
        b'(("=?utf-8?q?J=C3=B6rg?=" NIL "j" "example.org")) '
        b'(("=?utf-8?q?J=C3=B6rg?=" NIL "j" "example.org")) '
        b'(("=?iso-8859-1?b?SvZyZw==?=" NIL "k" "example.org") (NIL NIL "plain" "example.org")) '
        b"NIL NIL NIL NIL)",
        id="encoded-words-stay-raw",
    ),
    pytest.param(
        crlf('From: "Quote \\" and \\\\ back" <q@x>, <@a,@b:route@y>\nSender:\nSubject:\n\n'),
        b'(NIL "" (("Quote \\" and \\\\ back" NIL "q" "x") (NIL "@a,@b" "route" "y")) '
        b'(("Quote \\" and \\\\ back" NIL "q" "x") (NIL "@a,@b" "route" "y")) '
        b'(("Quote \\" and \\\\ back" NIL "q" "x") (NIL "@a,@b" "route" "y")) NIL NIL NIL NIL NIL)',
        id="quoting-route-empty-sender",
    ),
    pytest.param(
        "Subject: Grüße\r\nFrom: x@y\r\n\r\n".encode(),
        b'(NIL {7}\r\nGr\xc3\xbc\xc3\x9fe ((NIL NIL "x" "y")) ((NIL NIL "x" "y")) ((NIL NIL "x" "y")) '
        b"NIL NIL NIL NIL NIL)",
        id="8bit-as-literal",
    ),
]


@pytest.mark.parametrize(("message", "expected"), ENVELOPES)
def test_envelope(message: bytes, expected: bytes) -> None:
    assert parse_message(message).envelope == expected


BODYSTRUCTURES = [
    pytest.param(
        SIMPLE,
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 55 1 NIL NIL NIL NIL)',
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 55 1)',
        id="simple",
    ),
    pytest.param(
        ALTERNATIVE,
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 14 0 NIL NIL NIL NIL)'
        b'("text" "html" ("charset" "utf-8") NIL NIL "7bit" 53 0 NIL NIL NIL NIL) '
        b'"alternative" ("boundary" "b1") NIL NIL NIL)',
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 14 0)'
        b'("text" "html" ("charset" "utf-8") NIL NIL "7bit" 53 0) "alternative")',
        id="alternative",
    ),
    pytest.param(
        MIXED,
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 13 0 NIL NIL NIL NIL)'
        b'("application" "pdf" ("name" "r.pdf") "<pdf1@x>" "The report" "base64" 12 NIL '
        b'("attachment" ("filename" "report.pdf")) ("en" "de") "http://x/r.pdf") '
        b'"mixed" ("boundary" "XYZ") NIL NIL NIL)',
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 13 0)'
        b'("application" "pdf" ("name" "r.pdf") "<pdf1@x>" "The report" "base64" 12) "mixed")',
        id="mixed-attachment",
    ),
    pytest.param(
        NESTED,
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 9 0 NIL NIL NIL NIL)'
        b'("message" "rfc822" NIL NIL NIL "7bit" 53 '
        b'(NIL "inner" ((NIL NIL "inner" "example.org")) ((NIL NIL "inner" "example.org")) '
        b'((NIL NIL "inner" "example.org")) NIL NIL NIL NIL NIL) '
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL) '
        b'"mixed" ("boundary" "o") NIL NIL NIL)',
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 9 0)'
        b'("message" "rfc822" NIL NIL NIL "7bit" 53 '
        b'(NIL "inner" ((NIL NIL "inner" "example.org")) ((NIL NIL "inner" "example.org")) '
        b'((NIL NIL "inner" "example.org")) NIL NIL NIL NIL NIL) '
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0) 3) "mixed")',
        id="nested-rfc822",
    ),
    pytest.param(
        b"Subject: bare lf\nContent-Type: TEXT/Plain; CHARSET=\"ISO-8859-1\"\n\nline1\nline2\n",
        b'("TEXT" "Plain" ("CHARSET" "ISO-8859-1") NIL NIL "7bit" 12 2 NIL NIL NIL NIL)',
        b'("TEXT" "Plain" ("CHARSET" "ISO-8859-1") NIL NIL "7bit" 12 2)',
        id="bare-lf-case-kept",
    ),
    pytest.param(
        b"Subject: no blank line\r\nX-Other: y\r\n",
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)',
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)',
        id="no-blank-line",
    ),
    pytest.param(
        crlf("Content-Type: multipart/mixed; boundary=zz\n\nno delimiter at all\n"),
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) '
        b'"mixed" ("boundary" "zz") NIL NIL NIL)',
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")',
        id="multipart-without-parts",
    ),
    pytest.param(
        crlf("Content-Type: multipart/mixed; boundary=zz\n\n--zz\n\nunclosed\n"),
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 1 NIL NIL NIL NIL) '
        b'"mixed" ("boundary" "zz") NIL NIL NIL)',
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 1) "mixed")',
        id="unclosed-multipart",
    ),
    pytest.param(
        crlf("Content-Type: garbage\nContent-Disposition: inline\n\nx"),
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0 NIL ("inline" NIL) NIL NIL)',
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0)',
        id="broken-content-type-defaults",
    ),
    pytest.param(
        crlf(
            "Content-Type: application/octet-stream;\n"
            " name*0*=utf-8''na%C3%AFve;\n name*1=\".txt\"\n\nxx\n"
        ),
        b"(\"application\" \"octet-stream\" (\"name*\" \"utf-8''na%C3%AFve.txt\") "
        b'NIL NIL "7bit" 4 NIL NIL NIL NIL)',
        b"(\"application\" \"octet-stream\" (\"name*\" \"utf-8''na%C3%AFve.txt\") NIL NIL \"7bit\" 4)",
        id="rfc2231-continuation",
    ),
]


@pytest.mark.parametrize(("message", "structure", "body"), BODYSTRUCTURES)
def test_bodystructure(message: bytes, structure: bytes, body: bytes) -> None:
    parsed = parse_message(message)
    assert parsed.bodystructure == structure
    assert parsed.body == body


SECTIONS = [
    pytest.param(SIMPLE, (), None, (), SIMPLE, id="whole"),
    pytest.param(SIMPLE, (1,), None, (), SIMPLE[SIMPLE.index(b"\r\n\r\n") + 4 :], id="1-of-single"),
    pytest.param(SIMPLE, (2,), None, (), None, id="2-of-single"),
    pytest.param(SIMPLE, (1, 1), None, (), None, id="1.1-of-single"),
    pytest.param(SIMPLE, (1,), "HEADER", (), None, id="header-of-non-message"),
    pytest.param(SIMPLE, (), "MIME", (), None, id="mime-needs-part"),
    pytest.param(SIMPLE, (1,), "MIME", (), SIMPLE[: SIMPLE.index(b"\r\n\r\n") + 4], id="1.mime"),
    pytest.param(
        SIMPLE,
        (),
        "HEADER.FIELDS",
        ("SUBJECT", "from"),
        b"From: Fred Foobar <foobar@Blurdybloop.example>\r\nSubject: afternoon meeting\r\n\r\n",
        id="header-fields",
    ),
    pytest.param(SIMPLE, (), "header.fields", ("xyz",), b"\r\n", id="header-fields-none"),
    pytest.param(
        ENCODED,
        (),
        "HEADER.FIELDS",
        ("subject",),
        b"Subject: =?utf-8?B?w6l0w6k=?=\r\n =?utf-8?q?_d=C3=A9j=C3=A0?=\r\n\r\n",
        id="header-fields-keeps-folding",
    ),
    pytest.param(
        ENCODED,
        (),
        "HEADER.FIELDS.NOT",
        ("subject", "to"),
        b"From: =?utf-8?q?J=C3=B6rg?= <j@example.org>\r\n\r\n",
        id="header-fields-not",
    ),
    pytest.param(ALTERNATIVE, (1,), None, (), b"Caf=C3=A9 time", id="alt-1"),
    pytest.param(
        ALTERNATIVE,
        (1,),
        "MIME",
        (),
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
        id="alt-1-mime",
    ),
    pytest.param(ALTERNATIVE, (3,), None, (), None, id="alt-3-missing"),
    pytest.param(ALTERNATIVE, (0,), None, (), None, id="part-0"),
    pytest.param(MIXED, (1,), "MIME", (), b"\r\n", id="empty-mime-header"),
    pytest.param(MIXED, (1,), None, (), b"See attached.", id="mixed-1"),
    pytest.param(MIXED, (2,), None, (), b"JVBERi0xLjQK", id="mixed-2"),
    pytest.param(
        NESTED, (2,), "HEADER", (), b"From: inner@example.org\r\nSubject: inner\r\n\r\n", id="rfc822-header"
    ),
    pytest.param(NESTED, (2,), "TEXT", (), b"inner body", id="rfc822-text"),
    pytest.param(NESTED, (2, 1), None, (), b"inner body", id="rfc822-1"),
    pytest.param(NESTED, (2, 2), None, (), None, id="rfc822-2-missing"),
    pytest.param(
        NESTED,
        (2,),
        "HEADER.FIELDS",
        ("subject",),
        b"Subject: inner\r\n\r\n",
        id="rfc822-header-fields",
    ),
    pytest.param(
        b"Subject: x\nX: y\n\nbody\n", (), "HEADER.FIELDS", ("x",), b"X: y\n\n", id="bare-lf-fields"
    ),
    pytest.param(b"Subject: no blank", (), "HEADER", (), b"Subject: no blank", id="no-blank-header"),
    pytest.param(
        b"Subject: no blank", (), "HEADER.FIELDS", ("subject",), b"Subject: no blank\r\n\r\n", id="no-eol-field"
    ),
    pytest.param(SIMPLE, (1,), "BOGUS", (), None, id="unknown-specifier"),
]


@pytest.mark.parametrize(("message", "part", "spec", "fields", "expected"), SECTIONS)
def test_body_section(
    message: bytes, part: tuple[int, ...], spec: str | None, fields: tuple[str, ...], expected: bytes | None
) -> None:
    assert body_section(message, part, spec, fields) == expected


def test_header_and_text_sections() -> None:
    head = header_section(SIMPLE)
    assert head.endswith(b"\r\n\r\n") and head + text_section(SIMPLE) == SIMPLE
    assert header_section(b"\r\nbody") == b"\r\n" and text_section(b"\r\nbody") == b"body"
    assert header_section(b"no blank line") == b"no blank line"
    assert text_section(b"no blank line") == b""


def test_parsed_fields() -> None:
    p = parse_message(SIMPLE)
    assert p.subject == "afternoon meeting"
    assert p.from_ == "Fred Foobar <foobar@Blurdybloop.example>"
    assert p.to == "mooch@owatagu.example" and p.cc == ""
    assert p.date == datetime(1994, 2, 7, 21, 52, 25, tzinfo=timezone(timedelta(hours=-8)))
    assert p.message_id == "<B27397-0100000@Blurdybloop.example>"
    assert p.preview == "Hello Joe, do you think we can meet at 3:30 tomorrow?"
    assert "subject: afternoon meeting" in p.header_text.lower()
    assert "hello joe" in p.search_text


def test_encoded_words_decoded() -> None:
    p = parse_message(ENCODED)
    assert p.subject == "été déjà"
    assert p.from_ == "Jörg <j@example.org>"
    assert p.to == "Jörg <k@example.org>, plain@example.org"
    assert "Subject: été déjà" in p.header_text.split("\n")


def test_search_text_decodes_and_strips_html() -> None:
    p = parse_message(ALTERNATIVE)
    assert "café time" in p.search_text
    assert "evil" not in p.search_text and "<b>" not in p.search_text
    assert p.preview == "Café time"
    assert parse_message(MIXED).search_text.strip() == "see attached."


def test_search_text_base64_and_charset() -> None:
    msg = crlf(
        "Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: base64\n\n"
        "U2No9m5lIEdy/N9lIFNUUkFTU0U=\n"
    )
    p = parse_message(msg)
    assert p.search_text == "schöne grüsse strasse"
    assert p.preview == "Schöne Grüße STRASSE"


def test_html_only_preview() -> None:
    msg = crlf("Content-Type: text/html\n\n<html><body><h1>Title</h1><p>Para&nbsp;one</p></body></html>\n")
    assert parse_message(msg).preview == "Title Para one"


def test_missing_and_bad_date() -> None:
    assert parse_message(b"Subject: x\r\n\r\n").date is None
    assert parse_message(b"Date: not a date at all\r\n\r\n").date is None
    naive = parse_message(b"Date: Mon, 7 Feb 1994 21:52:25 -0000\r\n\r\n").date
    assert naive is not None and naive.tzinfo is not None


def test_message_view() -> None:
    view = message_view(MIXED)
    assert view.text == "See attached."
    assert view.html is None
    assert [(a.filename, a.content_type, a.size, a.part) for a in view.attachments] == [
        ("report.pdf", "application/pdf", 9, (2,))
    ]
    assert ("Subject", "report") in view.headers
    assert part_content(MIXED, (2,)) == b"%PDF-1.4\n"
    alt = message_view(ALTERNATIVE)
    assert alt.text == "Café time"
    assert alt.html is not None and alt.html.startswith("<p>Caf&eacute;")
    assert alt.attachments == []
    nested = message_view(NESTED)
    assert [(a.filename, a.content_type) for a in nested.attachments] == [("message.eml", "message/rfc822")]


def test_rfc2231_filename_decoded() -> None:
    msg = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n"
        "Content-Type: text/plain\nContent-Disposition: attachment;\n"
        " filename*=utf-8''na%C3%AFve%20file.txt\n\nhi\n--b--\n"
    )
    view = message_view(msg)
    assert [a.filename for a in view.attachments] == ["naïve file.txt"]
    assert view.text is None


def test_huge_nesting_is_bounded() -> None:
    depth = 200
    head = b"".join(
        b"Content-Type: multipart/mixed; boundary=n%dz\r\n\r\n--n%dz\r\n" % (i, i) for i in range(depth)
    )
    msg = head + b"Content-Type: text/plain\r\n\r\ndeep\r\n"
    p = parse_message(msg)
    assert p.bodystructure.count(b"(") == p.bodystructure.count(b")")
    # Splitting stops at MAX_DEPTH levels; the next multipart is an opaque leaf.
    assert p.bodystructure.count(b') "mixed"') == MAX_DEPTH
    assert p.bodystructure.count(b'("multipart" "mixed"') == 1
    deepest = (1,) * MAX_DEPTH
    assert body_section(msg, deepest, None) is not None
    assert body_section(msg, deepest + (1, 1), None) is None


def test_nested_rfc822_chain_is_bounded() -> None:
    msg = b"Content-Type: message/rfc822\r\n\r\n" * 500 + b"Subject: end\r\n\r\nx"
    p = parse_message(msg)
    assert p.bodystructure.count(b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)") == MAX_DEPTH
    assert p.bodystructure.count(b'("message" "rfc822"') == MAX_DEPTH + 1


def test_part_count_is_bounded() -> None:
    parts = b"".join(b"--b\r\n\r\npart %d\r\n" % i for i in range(MAX_PARTS * 3))
    msg = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n"
    p = parse_message(msg)
    assert p.bodystructure.count(b'("text"') < MAX_PARTS
    assert body_section(msg, (MAX_PARTS * 2,), None) is None


def test_boundary_prefix_and_padding() -> None:
    # RFC 2046 §5.1.1: transport padding after the delimiter is allowed.
    msg = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b \t\n\none\n--b--  \n")
    assert body_section(msg, (1,), None) == b"one"
    # A "--b" not at the start of a line is content.
    msg = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx --b y\n--b--\n")
    assert body_section(msg, (1,), None) == b"x --b y"


def test_inner_multipart_closed_by_outer_boundary() -> None:
    msg = crlf(
        "Content-Type: multipart/mixed; boundary=outer\n\n--outer\n"
        "Content-Type: multipart/alternative; boundary=inner\n\n--inner\n\nunclosed\n"
        "--outer\n\nsecond\n--outer--\n"
    )
    assert body_section(msg, (1, 1), None) == b"unclosed"
    assert body_section(msg, (2,), None) == b"second"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    p = parse_message(data)
    assert p.bodystructure.count(b"(") >= 1
    for part in ((), (1,), (1, 1), (2,), (2, 1, 3)):
        for spec in (None, "HEADER", "TEXT", "MIME", "HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            body_section(data, part, spec, ("subject", "content-type"))
    message_view(data)


_MIME_ALPHABET = st.sampled_from(
    [
        b"\r\n", b"\n", b"--b", b"--b--", b"--c", b"Content-Type: multipart/mixed; boundary=b\r\n",
        b"Content-Type: multipart/digest; boundary=c\r\n", b"Content-Type: message/rfc822\r\n",
        b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"Content-Type: text/html; charset=x-unknown\r\n", b"From: a <b@c>, g: d@e;\r\n",
        b"Subject: =?utf-8?b?w6k=?=\r\n", b"text", b" folded", b"=C3=A9", b"<p>", b"(", b'"',
    ]
)  # fmt: skip


def _parens_balanced(value: bytes) -> bool:
    """Parentheses balance outside quoted strings and literals (RFC 3501 §4.3)."""
    depth, i, n = 0, 0, len(value)
    while i < n:
        c = value[i]
        if c == 0x22:  # quoted string: skip to the closing quote
            i += 1
            while i < n and value[i] != 0x22:
                i += 2 if value[i] == 0x5C else 1
        elif c == 0x7B:  # literal {n}\r\n: skip its bytes
            close = value.find(b"}\r\n", i)
            if close < 0:
                return False
            i = close + 2 + int(value[i + 1 : close])
        elif c == 0x28:
            depth += 1
        elif c == 0x29:
            depth -= 1
            if depth < 0:
                return False
        i += 1
    return depth == 0


def test_parens_inside_quoted_parameters_do_not_unbalance() -> None:
    data = b"Content-Type: multipart/mixed; boundary=b\r\n folded(\r\n\r\n"
    structure = parse_message(data).bodystructure
    assert b'"b folded("' in structure
    assert _parens_balanced(structure)
    assert not _parens_balanced(b'(("x")')


@settings(max_examples=300, deadline=None)
@given(st.lists(_MIME_ALPHABET, max_size=60).map(b"".join))
def test_mime_shaped_bytes_never_raise(data: bytes) -> None:
    p = parse_message(data)
    assert _parens_balanced(p.bodystructure)
    for part in ((1,), (1, 1), (2,), (1, 2, 1)):
        for spec in (None, "HEADER", "TEXT", "MIME", "HEADER.FIELDS"):
            body_section(data, part, spec, ("from",))
    message_view(data)


# Inputs that once were (or easily become) quadratic or unbounded. The timeout
# is a generous guard against a complexity regression, not a speed target.
HOSTILE = {
    "param-name-without-equals": b"Content-Type: text/plain; " + b"a" * 300_000 + b'"=x\r\n\r\nx',
    "param-whitespace": b"Content-Type: text/plain; a" + b" " * 300_000 + b"\r\n\r\nx",
    "escaped-quotes": b"Content-Type: text/plain; " + b'a="\\' * 100_000 + b"\r\n\r\nx",
    "html-open-brackets": b"Content-Type: text/html\r\n\r\n" + b"<" * 1_000_000,
    "html-unclosed-script": b"Content-Type: text/html\r\n\r\n" + b"<script>" * 200_000,
    "empty-parts": b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n" * 300_000,
    "many-fields": b"X: y\r\n" * 200_000 + b"\r\nbody",
    "address-commas": b"To: " + b"a@b," * 100_000 + b"\r\n\r\n",
    "address-parens": b"To: " + b"(" * 100_000 + b"\r\n\r\n",
    "address-quotes": b"To: " + b'"' * 100_001 + b"\r\n\r\n",
    "encoded-words": b"Subject: " + b"=?utf-8?q?a?= " * 50_000 + b"\r\n\r\n",
    "nested-comments": b"Content-Type: text/plain" + b"(" * 100_000 + b"\r\n\r\n",
    "rfc822-chain-lf": b"Content-Type: message/rfc822\n\n" * 10_000,
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("data", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_input_is_bounded(data: bytes) -> None:
    parsed = parse_message(data)
    assert len(parsed.search_text) <= 1024 * 1024
    assert len(parsed.header_text) <= 1024 * 1024 + 100_000
    body_section(data, (1,), "MIME")
    body_section(data, (), "HEADER.FIELDS", ("to", "x"))
    view = message_view(data)
    assert len(view.attachments) <= MAX_PARTS


# The fast paths (simple addresses, common dates, Q-encoding via binascii,
# ASCII headers) must agree with the general code on the shapes next to them.


@pytest.mark.parametrize(
    ("to", "envelope_to", "display_to"),
    [
        (b"Bob <bob@x.org>", b'(("Bob" NIL "bob" "x.org"))', "Bob <bob@x.org>"),
        (b"  J. R.  Bob\t<bob@x.org> ", b'(("J. R. Bob" NIL "bob" "x.org"))', "J. R. Bob <bob@x.org>"),
        (b"a . <a@b>", b'(("a" NIL "a" "b"))', "a <a@b>"),
        (b"a@b,, c@d,", b'((NIL NIL "a" "b") (NIL NIL "c" "d"))', "a@b, c@d"),
        (b"g: a@b;", b'((NIL NIL "g" NIL) (NIL NIL "a" "b") (NIL NIL NIL NIL))', "a@b"),
        (b'"Q, R" <q@r>', b'(("Q, R" NIL "q" "r"))', "Q, R <q@r>"),
        (b"a@b (Al)", b'(("Al" NIL "a" "b"))', "Al <a@b>"),
        (b"a b@c", b'((NIL NIL "ab" "c"))', "ab@c"),
    ],
)
def test_address_shapes(to: bytes, envelope_to: bytes, display_to: str) -> None:
    parsed = parse_message(b"To: " + to + b"\r\n\r\n")
    assert parsed.envelope == b"(NIL NIL NIL NIL NIL " + envelope_to + b" NIL NIL NIL NIL)"
    assert parsed.to == display_to


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"Tue, 2 Jan 2024 10:00:00 +0100", datetime(2024, 1, 2, 9, 0, tzinfo=timezone.utc)),
        (b"2 Jan 2024 10:00:00 -0000 (no zone)", datetime(2024, 1, 2, 10, 0, tzinfo=timezone.utc)),
        (b"Tue, 2 Jan 0099 10:00:00 +0000", datetime(1999, 1, 2, 10, 0, tzinfo=timezone.utc)),
        (b"Tue, 2 Jan 2024 10:00:00 +0160", datetime(2024, 1, 2, 8, 0, tzinfo=timezone.utc)),
        (b"Tue, 2 Jan 2024 10:00 EST", datetime(2024, 1, 2, 15, 0, tzinfo=timezone.utc)),
        (b"Tue, 31 Feb 2024 10:00:00 +0100", None),
        (b"Tue, 2 Jan 2024 10:00:00 +9999", None),
    ],
)
def test_date_forms(raw: bytes, expected: datetime | None) -> None:
    assert parse_message(b"Date: " + raw + b"\r\n\r\n").date == expected


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (b"=?utf-8?q?caf=C3=A9_=5F?=", "café _"),
        (b"=?utf-8?q?a==3D?=", "a=="),  # the first "=" is literal, "=3D" is "="
        (b"=?utf-8?q?end=?=", "end="),
        (b"=?utf-8?q?=c3=a9?=", "é"),
        (b"\x1c plain \x1f", "plain"),
    ],
)
def test_subject_forms(subject: bytes, expected: str) -> None:
    assert parse_message(b"Subject: " + subject + b"\r\n\r\n").subject == expected


def test_script_and_style_dropped_case_insensitively() -> None:
    data = b"Content-Type: text/html\r\n\r\n<SCRIPT>x()</Script><p>Hi</p><STYLE>p{}</style>there"
    assert parse_message(data).search_text.split() == ["hi", "there"]
