"""BINARY (RFC 3516) over a real socket: literal8 APPEND, FETCH BINARY/BINARY.PEEK/BINARY.SIZE,
literal8 responses, UNKNOWN-CTE, and BINARY[] of a file-backed message streamed."""

from __future__ import annotations

import pytest

from rmail.server.core.sqlite.mail import INLINE_BLOB_MAX
from rmail.server.runtime import ServerRuntime

from .conftest import RawClient
from .test_imap_transcripts import expect

HEAD = (b"From: a@example.com\r\nSubject: bin\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n")
# A quoted-printable part, a binary part with NULs, a part in an encoding nobody knows.
MSG = (HEAD
       + b"--zz\r\nContent-Type: text/plain; charset=utf-8\r\n"
         b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9  \r\nsoft=\r\nbreak\r\n"
       + b"--zz\r\nContent-Type: application/octet-stream\r\n"
         b"Content-Transfer-Encoding: binary\r\n\r\n\x00\x01bin\xff\r\n"
       + b"--zz\r\nContent-Type: application/x-foo\r\n"
         b"Content-Transfer-Encoding: x-foo\r\n\r\nfoo\r\n"
       + b"--zz--\r\n")
# What the store keeps: the binary part as base64 (RFC 3516 §4.4), the rest as sent.
STORED = MSG.replace(b"Content-Transfer-Encoding: binary\r\n\r\n\x00\x01bin\xff",
                     b"Content-Transfer-Encoding: base64\r\n\r\nAAFiaW7/")


async def test_binary_transcript(runtime: ServerRuntime) -> None:
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    await c.send(b"a1 APPEND INBOX (\\Flagged) ~{%d}\r\n" % len(MSG))
    assert (await c.line()).startswith(b"+ ")
    await c.send(MSG + b"\r\n")
    reply = await c.until_tagged(b"a1")
    assert reply.startswith(b"a1 OK [APPENDUID "), reply
    await c.cmd(b"s", b"SELECT INBOX")
    steps = [
        (b"f1 FETCH 1 (BINARY.SIZE[1] BINARY.SIZE[2] BINARY.SIZE[])\r\n",
         b"* 1 FETCH (BINARY.SIZE[1] 16 BINARY.SIZE[2] 6 BINARY.SIZE[] %d)\r\n"
         b"f1 OK FETCH completed\r\n" % len(STORED)),
        (b"f2 FETCH 1 (BINARY.PEEK[1] BINARY.PEEK[2])\r\n",
         b"* 1 FETCH (BINARY[1] {16}\r\ncaf\xc3\xa9\r\nsoftbreak BINARY[2] ~{6}\r\n\x00\x01bin\xff)\r\n"
         b"f2 OK FETCH completed\r\n"),
        # BODY[] shows what is stored: the binary part in base64.
        (b"f3 FETCH 1 (BODY.PEEK[2] BODY.PEEK[2.MIME])\r\n",
         b"* 1 FETCH (BODY[2] {8}\r\nAAFiaW7/ BODY[2.MIME] {77}\r\nContent-Type: "
         b"application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n)\r\n"
         b"f3 OK FETCH completed\r\n"),
        # A partial counts decoded octets; only the piece sent decides literal8.
        (b"f4 UID FETCH 1 (BINARY.PEEK[2]<2.3> BINARY.PEEK[2]<0.1> BINARY.PEEK[1]<3.2>)\r\n",
         b"* 1 FETCH (UID 1 BINARY[2]<2> {3}\r\nbin BINARY[2]<0> ~{1}\r\n\x00 BINARY[1]<3> {2}\r\n"
         b"\xc3\xa9)\r\nf4 OK FETCH completed\r\n"),
        (b"f5 FETCH 1 (BINARY.PEEK[3])\r\n",
         b"f5 NO [UNKNOWN-CTE] unknown Content-Transfer-Encoding 'x-foo'\r\n"),
        (b"f6 FETCH 1 BINARY.SIZE[3]\r\n",
         b"f6 NO [UNKNOWN-CTE] unknown Content-Transfer-Encoding 'x-foo'\r\n"),
        # A part that does not exist is empty, as for BODY[].
        (b"f7 FETCH 1 (BINARY.PEEK[9] BINARY.SIZE[9])\r\n",
         b"* 1 FETCH (BINARY[9] {0}\r\n BINARY.SIZE[9] 0)\r\nf7 OK FETCH completed\r\n"),
        # BINARY without .PEEK sets \Seen (RFC 3516 §4.2); BINARY.SIZE does not.
        (b"f8 FETCH 1 (FLAGS BINARY[1]<0.3>)\r\n",
         b"* 1 FETCH (FLAGS (\\Seen \\Flagged \\Recent) BINARY[1]<0> {3}\r\ncaf)\r\n"
         b"f8 OK FETCH completed\r\n"),
        # section-binary is part numbers only; BINARY.SIZE takes no partial.
        (b"b1 FETCH 1 BINARY[1.MIME]\r\n",
         b"b1 BAD expected number\r\n"),
        (b"b2 FETCH 1 BINARY[0]\r\n", b"b2 BAD number out of range\r\n"),
        (b"b3 FETCH 1 BINARY.SIZE[1]<0.1>\r\n",
         b"b3 BAD unexpected characters at end of command\r\n"),
        (b"b4 FETCH 1 BINARY[HEADER]\r\n", b"b4 BAD expected number\r\n"),
    ]
    for send, wanted in steps:
        await c.send(send)
        await expect(c, wanted, send)
    await c.close()


async def test_literal8_append_nonsync(runtime: ServerRuntime) -> None:
    """~{n+} (LITERAL+) works as well; a message without binary parts is stored as sent."""
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    plain = b"Subject: p\r\n\r\nplain\r\n"
    reply = await c.cmd(b"a", b"APPEND INBOX ~{%d+}\r\n%b" % (len(plain), plain))
    assert reply.startswith(b"a OK [APPENDUID "), reply
    await c.cmd(b"s", b"SELECT INBOX")
    assert await c.cmd(b"f", b"FETCH 1 BODY.PEEK[]") == (
        b"* 1 FETCH (BODY[] {%d}\r\n%b)\r\nf OK FETCH completed\r\n" % (len(plain), plain))
    await c.close()


BIG_PART = bytes(range(256)) * 800  # 200 KiB with NULs: a file-backed message
BIG = (b"Subject: big\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n"
       b"Content-Transfer-Encoding: binary\r\n\r\n" + BIG_PART + b"\r\n--q--\r\n")


@pytest.mark.parametrize("nonsync", [False, True])
async def test_large_binary_streamed_and_decoded(runtime: ServerRuntime, nonsync: bool) -> None:
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    if nonsync:
        reply = await c.cmd(b"a", b"APPEND INBOX ~{%d+}\r\n%b" % (len(BIG), BIG))
    else:
        await c.send(b"a APPEND INBOX ~{%d}\r\n" % len(BIG))
        await c.line()
        await c.send(BIG + b"\r\n")
        reply = await c.until_tagged(b"a")
    assert reply.startswith(b"a OK"), reply
    await c.cmd(b"s", b"SELECT INBOX")
    stored = (await c.cmd(b"r", b"FETCH 1 BODY.PEEK[]")).split(b"}\r\n", 1)[1][:-len(
        b")\r\nr OK FETCH completed\r\n")]
    assert len(stored) > INLINE_BLOB_MAX and b"\x00" not in stored
    # BINARY[] and BINARY.SIZE[] of a file-backed message: streamed, from the size.
    await c.send(b"f1 FETCH 1 (BINARY.SIZE[] BINARY.PEEK[])\r\n")
    await expect(c, b"* 1 FETCH (BINARY.SIZE[] %d BINARY[] ~{%d}\r\n%b)\r\nf1 OK FETCH completed\r\n"
                 % (len(stored), len(stored), stored), b"f1")
    # A part is decoded from the whole message (bounded by the message-size limit).
    await c.send(b"f2 FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])\r\n")
    await expect(c, b"* 1 FETCH (BINARY.SIZE[1] %d BINARY[1] ~{%d}\r\n%b)\r\nf2 OK FETCH completed\r\n"
                 % (len(BIG_PART), len(BIG_PART), BIG_PART), b"f2")
    await c.close()
