"""Decoded part content (RFC 3516 BINARY) and binary APPENDs made storable (core.mime.binary)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmail.server.core.mime import body_section
from rmail.server.core.mime.binary import (UnknownEncoding, binary_section, binary_size,
                                           qp_decode, storable)


@pytest.mark.parametrize("encoded, decoded", [
    (b"plain", b"plain"),
    (b"hello  \r\nworld", b"hello\r\nworld"),          # trailing whitespace is padding
    (b"soft=\r\nbreak", b"softbreak"),
    (b"soft= \t\r\nbreak", b"softbreak"),               # whitespace after a soft break
    (b"caf=C3=A9", b"caf\xc3\xa9"),
    (b"lower=c3=a9", b"lower\xc3\xa9"),                # lower-case hex tolerated
    (b"a=ZZb", b"a=ZZb"),                              # not an escape: kept
    (b"end=", b"end"),
    (b"bare\nlf\n", b"bare\nlf\n"),                    # each line keeps its own break
    (b"x=\ny", b"xy"),
    (b"tab\t=\r\n=62", b"tab\tb"),
])
def test_qp_decode(encoded: bytes, decoded: bytes) -> None:
    assert qp_decode(encoded) == decoded


MULTI = (b"From: a@example.com\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
         b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
         b"aGVs\r\n bG8=\r\n"
         b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\n"
         b"a=3Db  \r\n"
         b"--b\r\nContent-Type: application/x\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
         b"begin 644 x\r\n"
         b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
         b"Subject: inner\r\n\r\ninner body\r\n"
         b"--b--\r\n")


def test_binary_sections() -> None:
    assert binary_section(MULTI, ()) == MULTI
    assert binary_size(MULTI, ()) == len(MULTI)
    assert binary_section(MULTI, (1,)) == b"hello"
    assert binary_size(MULTI, (1,)) == 5
    assert binary_section(MULTI, (2,)) == b"a=b"  # the last CRLF belongs to the boundary
    assert binary_size(MULTI, (2,)) == 3
    assert binary_section(MULTI, (4,)) == b"Subject: inner\r\n\r\ninner body"
    assert binary_section(MULTI, (4, 1)) == b"inner body"
    assert binary_section(MULTI, (9,)) is None
    assert binary_size(MULTI, (9,)) is None
    with pytest.raises(UnknownEncoding):
        binary_section(MULTI, (3,))
    with pytest.raises(UnknownEncoding):
        binary_size(MULTI, (3,))


def test_storable_reencodes_binary_parts_only() -> None:
    raw = (b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\ntext stays\r\n"
           b"--b\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: binary\r\n\r\n\x00\x01\xff\r\n\n"
           b"--b--\r\n")
    stored = storable(raw)
    assert b"\x00" not in stored
    assert body_section(stored, (1,), None) == b"text stays"
    assert body_section(stored, (2, ), "MIME") == (
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
    assert body_section(stored, (2,), None) == b"AAH/DQo="
    assert binary_section(stored, (2,)) == b"\x00\x01\xff\r\n"  # "\n--b" is the boundary


def test_storable_leaves_ordinary_messages_alone() -> None:
    assert storable(MULTI) is MULTI
    plain = b"Subject: x\r\n\r\nabout binary things\r\n"
    assert storable(plain) == plain


def test_storable_non_mime_message_with_nul() -> None:
    stored = storable(b"Subject: x\r\n\r\na\x00b")
    assert stored == b"Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\nYQBi"
    assert binary_section(stored, (1,)) == b"a\x00b"


def test_storable_binary_message_rfc822_container() -> None:
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: binary\r\n\r\n"
           b"Subject: in\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00in\r\n"
           b"--b--\r\n")
    stored = storable(raw)
    assert b"\x00" not in stored
    assert body_section(stored, (1,), "MIME") == (
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
    assert binary_section(stored, (1, 1)) == b"\x00in"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.booleans())
def test_storable_round_trip(body: bytes, crlf: bool) -> None:
    """Whatever the octets of a binary part, BINARY gives them back exactly and the stored
    message holds no NUL."""
    eol = b"\r\n" if crlf else b"\n"
    raw = (b"From: a@example.com" + eol + b"Content-Type: multipart/mixed; boundary=zz" + eol
           + eol + b"--zz" + eol + b"Content-Transfer-Encoding: binary" + eol + eol
           + body.replace(b"--zz", b"--yy") + eol + b"--zz--" + eol)
    stored = storable(raw)
    assert b"\x00" not in stored
    assert binary_section(stored, (1,)) == binary_section(raw, (1,))
    assert binary_size(stored, (1,)) == len(binary_section(raw, (1,)) or b"")


def test_composite_part_has_its_leaves_decoded() -> None:
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
           b"Subject: in\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\npre\r\n"
           b"--c\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n"
           b"--c\r\nContent-Type: text/plain\r\n\r\nas is\r\n"
           b"--c--\r\nepi\r\n"
           b"--b--\r\n")
    inner = (b"Subject: in\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\npre\r\n"
             b"--c\r\nContent-Transfer-Encoding: binary\r\n\r\nhello\r\n"
             b"--c\r\nContent-Type: text/plain\r\n\r\nas is\r\n"
             b"--c--\r\nepi")
    assert binary_section(raw, (1,)) == inner
    assert binary_size(raw, (1,)) == len(inner)
    assert binary_section(raw, (1, 1)) == b"hello"
