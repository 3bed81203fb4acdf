"""PREVIEW (RFC 8970) over a real socket, after the RFC's §5 example: the preview computed at
delivery, quoted or a literal by the string rule, "" for a message without text, LAZY."""

from __future__ import annotations

from rmail.server.runtime import ServerRuntime

from .conftest import RawClient
from .test_imap_transcripts import expect

LOREM = (b"From: a@example.com\r\nSubject: lorem\r\n\r\n"
         b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n"
         b"Curabitur aliquam turpis et ante dictum, et pulvinar dui congue.\r\n\r\n"
         b"Maecenas hendrerit, lorem non imperdiet pellentesque, nulla ligula nullam "
         b"nisl, vitae tristique odio lectus a lorem. Cras iaculis nunc sed ante viverra.\r\n")
EMPTY = b"From: a@example.com\r\nSubject: nothing\r\n\r\n"
CAFE = (b"From: a@example.com\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\nCaf\xc3\xa9   au\r\n\tlait\r\n")


async def test_preview(runtime: ServerRuntime) -> None:
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    for msg in (LOREM, EMPTY, CAFE):
        assert (await c.cmd(b"a", b"APPEND INBOX {%d+}\r\n%b" % (len(msg), msg))).startswith(b"a OK")
    await c.cmd(b"s", b"SELECT INBOX")
    preview = (b"Lorem ipsum dolor sit amet, consectetur adipiscing elit. Curabitur aliquam "
               b"turpis et ante dictum, et pulvinar dui congue. Maecenas hendrerit, lorem non "
               b"imperdiet pellentesque, nulla ligula nullam nisl")
    assert len(preview) == 200
    steps = [
        (b"A2 FETCH 1 (RFC822.SIZE PREVIEW)\r\n",
         b'* 1 FETCH (RFC822.SIZE %d PREVIEW "%b")\r\nA2 OK FETCH completed\r\n'
         % (len(LOREM), preview)),
        (b"A3 FETCH 2 (PREVIEW (LAZY))\r\n",
         b'* 2 FETCH (PREVIEW "")\r\nA3 OK FETCH completed\r\n'),
        # 8-bit text is never quoted (RFC 3501 §4.3): a literal, whitespace runs collapsed.
        (b"A4 UID FETCH 3 (PREVIEW (LAZY LAZY) FLAGS)\r\n",
         b"* 3 FETCH (UID 3 PREVIEW {13}\r\nCaf\xc3\xa9 au lait FLAGS (\\Recent))\r\n"
         b"A4 OK FETCH completed\r\n"),
        (b"A5 FETCH 1 (PREVIEW (FUZZY))\r\n", b"A5 BAD expected LAZY\r\n"),
        (b"A6 FETCH 1 (PREVIEW ())\r\n", b"A6 BAD expected LAZY\r\n"),
    ]
    for send, wanted in steps:
        await c.send(send)
        await expect(c, wanted, send)
    await c.close()
