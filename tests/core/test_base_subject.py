"""Base subject extraction (RFC 5256 §2.1), the i;unicode-casemap collation (RFC 5051) and the
ENVELOPE address reader that SORT and THREAD build on."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmail.server.core.collation import unicode_casemap
from rmail.server.core.mime.address import parse_addresses
from rmail.server.core.mime.envelope import envelope_addresses
from rmail.server.core.mime.imapstruct import address_lists
from rmail.server.core.mime.parse import parse_message
from rmail.server.core.mime.subject import base_subject
from rmail.server.core.mime.text import header_str
from rmail.server.core.mime.tree import parse_tree

# (subject as decoded text, base subject, reply or forward)
CASES = [
    # (1) whitespace: tabs, continuations and runs become one space
    ("Hello\tworld", "Hello world", False),
    ("Hello \t  world", "Hello world", False),
    ("", "", False),
    ("   ", "", False),
    # (2) trailers: "(fwd)" and WSP, repeatedly, any case
    ("news (fwd)", "news", True),
    ("news (FWD) (Fwd)  ", "news", True),
    ("news(fwd)", "news", True),
    ("(fwd)", "", True),
    ("news (fwd) x", "news (fwd) x", False),
    # (3) leaders: re, fw, fwd, with blobs before and inside, and WSP
    ("Re: hello", "hello", True),
    ("RE: hello", "hello", True),
    ("re:hello", "hello", True),
    ("Fw: hello", "hello", True),
    ("FWD: hello", "hello", True),
    ("Re: Re: Fwd: hello", "hello", True),
    ("Re [2]: hello", "hello", True),
    ("Re[list]: hello", "hello", True),
    ("Re  : hello", "hello", True),
    ("[list] Re: hello", "hello", True),
    ("[a][b] Fwd: [c] Re: hello", "hello", True),
    ("Ref: hello", "Ref: hello", False),
    ("Reply: hello", "Reply: hello", False),
    ("Aw: hello", "Aw: hello", False),  # translations are not removed (§7)
    ("Ad: Re: Ad: Re: Ad: x", "Ad: Re: Ad: Re: Ad: x", False),
    # (4) a blob prefix goes when something is left after it
    ("[list] hello", "hello", False),
    ("[list]hello", "hello", False),
    ("[a] [b] hello", "hello", False),
    ("[xyz]", "[xyz]", False),
    ("[a][b][c]", "[c]", False),
    ("[a] [b]", "[b]", False),
    ("[unclosed hello", "[unclosed hello", False),
    ("[nested [x]] y", "[nested [x]] y", False),
    # (5) leaders after a removed blob, blobs after a removed leader
    ("[list] [other] Re: [x] hello", "hello", True),
    # (6) "[fwd: ...]" unwrapped, then again from step (2)
    ("[fwd: hello]", "hello", True),
    ("[FWD: Re: hello (fwd)]", "hello", True),
    ("Re: [FWD: c]", "c", True),
    ("re: [fwd: [fwd: re: [fwd: babylon]]]", "babylon", True),
    ("[fwd: hello] tail", "tail", False),  # a blob (step 4), not a subj-fwd
    ("[fwd:]", "", True),
    ("[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "b", True),
    # i18n: non-ASCII text is kept as it is; only ASCII "re"/"fw"/"fwd" are leaders
    ("Re: Grüße aus Köln", "Grüße aus Köln", True),
    ("[列表] Re: 你好", "你好", True),
    ("Ré: hello", "Ré: hello", False),
]


@pytest.mark.parametrize("subject, base, marked", CASES, ids=[c[0] or "empty" for c in CASES])
def test_base_subject(subject: str, base: str, marked: bool) -> None:
    assert base_subject(subject) == (base, marked)


@pytest.mark.parametrize("raw, base", [
    # (1) encoded-words are decoded before anything else: the prefix hidden in one counts
    (b"=?iso-8859-1?q?RE:_C?=", "C"),
    (b"=?us-ascii?b?UmU6IGM=?=", "c"),
    (b"Re: =?utf-8?q?b?=", "b"),
    (b"=?iso-8859-1?q?_?=", ""),
    (b"=?utf-8?b?W2xpc3RdIFJlOiBHcsO8w59l?=", "Grüße"),
    (b"Re: =?utf-8?q?caf=C3=A9?=\r\n\t(fwd)", "café"),
])
def test_encoded_words_are_decoded_first(raw: bytes, base: str) -> None:
    assert base_subject(header_str(raw)).text == base
    # as stored at delivery (ParsedMessage.subject, what SORT and THREAD read)
    assert base_subject(parse_message(b"Subject: " + raw + b"\r\n\r\nx").subject).text == base


def test_many_blobs_take_linear_time() -> None:
    """Each blob is looked at a bounded number of times, not once per blob before it."""
    subject = "[x] " * 50_000 + "hello"
    assert base_subject(subject).text == "hello"
    assert base_subject("[x]" * 50_000).text == "[x]"


@given(st.text(alphabet=st.sampled_from(list("Re:Fwd[] ()x\t")), max_size=40))
@settings(max_examples=300, deadline=None)
def test_base_subject_is_a_fixed_point(subject: str) -> None:
    """The base subject of a base subject is itself, and it never has outer whitespace."""
    base = base_subject(subject).text
    assert base_subject(base).text == base
    assert base == base.strip(" ")


@pytest.mark.parametrize("a, b", [
    ("hello", "HELLO"), ("grüße", "GRÜßE"), ("é", "É"),
    ("é", "e\u0301"),           # decomposed and precomposed
    ("ⅻ", "xii"),               # titlecase, then the compatibility decomposition
    ("ǆ", "ǅ"),                 # titlecase of a digraph
])
def test_casemap_equal(a: str, b: str) -> None:
    assert unicode_casemap(a) == unicode_casemap(b)


@pytest.mark.parametrize("lower, higher", [
    ("", "a"), ("a", "B"), ("B", "c"), ("C", "[xyz]"), ("[xyz]", "_"), ("e", "é"), ("é", "f"),
    ("b (a)", "babylon"),
])
def test_casemap_order(lower: str, higher: str) -> None:
    """Titlecase mapping: letters sort before "[" and "_" (imaptest's sort-subject order)."""
    assert unicode_casemap(lower) < unicode_casemap(higher)


HEADERS = [
    b"From: foo bar <a@b.c>\r\nTo: a: xx@xx.org, yy@yy.org;\r\nCc: empty:;\r\n",
    b'From: "Doe, =?utf-8?q?J=C3=B6hn?=" <j@x.org>, b@c\r\nTo: d\r\n',
    b"From: =?iso-8859-1?q?foo_aar?= <e@f.g>\r\nBcc: user2@domain2.org (foo bar)\r\n",
    b'From: "quo\\"ted" <q@x>\r\nReply-To: <@route:r@x>\r\nSender: s\xc3\xa9@x\r\n',
    b"To: " + b"x" * 1100 + b"@long.example\r\n",
    b"Subject: no addresses\r\n",
]


@pytest.mark.parametrize("header", HEADERS)
def test_envelope_addresses_read_back_what_was_written(header: bytes) -> None:
    message = header + b"\r\nbody\r\n"
    parsed = parse_message(message)
    written = address_lists(parse_tree(message).first_values(
        ("from", "sender", "reply-to", "to", "cc", "bcc")))
    # ENVELOPE defaults sender and reply-to to from (RFC 3501 §7.4.2)
    for key in ("sender", "reply-to"):
        if key not in written and "from" in written:
            written[key] = written["from"]
    assert envelope_addresses(parsed.envelope) == {k: v for k, v in written.items() if v}


def test_envelope_addresses_never_raise() -> None:
    assert envelope_addresses(b"") == {}
    assert envelope_addresses(b"(NIL NIL ((NIL NIL") == {}
    assert envelope_addresses(b'(NIL NIL (("a" NIL "b" "c")) NIL NIL {999}\r\nx') == {
        "from": [parse_addresses("a <b@c>")[0]]}
