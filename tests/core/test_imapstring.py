"""The one IMAP string rule (rmail.server.core.imapstring), shared by ENVELOPE/BODYSTRUCTURE
at delivery and by the IMAP adapter's encoder."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmail.server.core.imapstring import MAX_QUOTED, address, nstring, string


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"abc", b'"abc"'),
        (b"", b'""'),
        (b'a"b\\c', b'"a\\"b\\\\c"'),
        (b"tab\there", b'"tab\there"'),          # any 7-bit CHAR but CR/LF may be quoted
        (b"ctl\x01\x7f", b'"ctl\x01\x7f"'),
        (b"line\r\nbreak", b"{11}\r\nline\r\nbreak"),
        (b"cr\ronly", b"{7}\r\ncr\ronly"),
        ("ü", b"{2}\r\n\xc3\xbc"),
        ("\udcff", b"{1}\r\n\xff"),                # surrogateescape: the original byte
        (b"x" * MAX_QUOTED, b'"' + b"x" * MAX_QUOTED + b'"'),
        (b"x" * (MAX_QUOTED + 1), b"{%d}\r\n" % (MAX_QUOTED + 1) + b"x" * (MAX_QUOTED + 1)),
        (b"nul\x00", b'"nul"'),                    # NUL is never sent (RFC 3501 §4.3)
        (b"\xc3\xa9\x00\r\n", b"{4}\r\n\xc3\xa9\r\n"),
    ],
)
def test_string(value: bytes | str, expected: bytes) -> None:
    assert string(value) == expected


def test_nstring() -> None:
    assert nstring(None) == b"NIL"
    assert nstring(b"x") == b'"x"'


@pytest.mark.parametrize("values", [
    ("Bob", None, "bob", "example.com"),
    (None, None, None, None),
    ('Bob "B"', None, "bob", "example.com"),
    ("caf\u00e9", None, "x", "y"),
    ("x" * 600, None, "y" * 600, "z"),
    ("a\r\nb", None, "c", "d"),
])
def test_address_is_nstrings_in_parentheses(values: tuple[str | None, ...]) -> None:
    assert address(*values) == b"(" + b" ".join(nstring(v) for v in values) + b")"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.none() | st.text(max_size=400), min_size=4, max_size=4))
def test_address_fast_path_agrees(values: list[str | None]) -> None:
    assert address(*values) == b"(" + b" ".join(nstring(v) for v in values) + b")"
