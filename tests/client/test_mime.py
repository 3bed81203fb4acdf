"""Parsing whole messages for the reader, including the shared corpus of awkward mail."""

from __future__ import annotations

import mailbox
from pathlib import Path

import pytest

from rmail.client.mime import all_attachments, attachment_data, parse_message
from tests.client.fake_backend import make_message

CORPUS = Path("/work/shared/corpus/mbox")


def test_plain_message_fields() -> None:
    m = parse_message(make_message("Hi", sender="=?utf-8?q?J=C3=B6rg?= <j@x.org>", cc="c@x.org", body="body\n"))
    assert m.subject == "Hi" and m.sender[0].name == "Jörg" and m.cc[0].email == "c@x.org"
    assert m.text == "body\n" and not m.from_html and m.attachments == ()


def test_html_only_is_converted() -> None:
    m = parse_message(make_message("H", html="<p>Hello <i>there</i></p>"))
    assert m.from_html and m.text == "Hello there"


def test_attachments_listed_and_extracted_with_safe_names() -> None:
    raw = make_message("A", attachment=("../../etc/passwd", b"\x00\x01data"))
    m = parse_message(raw)
    assert [a.filename for a in m.attachments] == ["passwd"]
    name, ctype, data = attachment_data(raw, m.attachments[0].index)
    assert (name, ctype, data) == ("passwd", "application/octet-stream", b"\x00\x01data")
    assert all_attachments(raw) == [(name, ctype, data)]
    with pytest.raises(KeyError):
        attachment_data(raw, 999)


def test_garbage_never_raises() -> None:
    for raw in (b"", b"\xff\xfe\x00garbage", b"Subject: =?bogus?x?zz?=\r\nContent-Type: multipart/mixed\r\n\r\nno boundary",
                b"From: <<<@@@>>>\r\nDate: yesterday\r\n\r\nbody"):
        parse_message(raw)
        all_attachments(raw)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_corpus_messages_parse() -> None:
    count = 0
    for path in sorted(CORPUS.glob("*.mbox")):
        for msg in mailbox.mbox(path):
            raw = msg.as_bytes()
            parse_message(raw)
            all_attachments(raw)
            count += 1
    assert count > 50
