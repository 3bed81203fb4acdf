"""Pure composition: replies, forwards, addresses, MIME."""

from __future__ import annotations

import email.policy
from email.parser import BytesParser

import pytest

from rmail.client.compose import (
    Attachment,
    Draft,
    build_message,
    check_addresses,
    forward,
    forward_subject,
    quote_text,
    recipients,
    reply,
    reply_subject,
    validate,
)
from rmail.client.mime import parse_message
from tests.client.fake_backend import make_message

ORIGINAL = parse_message(
    make_message(
        "Re: Plans",
        sender="Bob <bob@example.com>",
        to="alice@example.com, Dan <dan@example.net>",
        cc="Carol <carol@example.org>, alice@example.com",
        message_id="<m2@example.com>",
        in_reply_to="<m1@example.com>",
        references="<m0@example.com> <m1@example.com>",
        body="Line one\n> earlier quote\n\nLine three\n",
    )
)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [("Plans", "Re: Plans"), ("Re: Plans", "Re: Plans"), ("RE: re: Plans", "Re: Plans"), ("Aw: Plans", "Re: Plans"),
     ("Re[2]: Plans", "Re: Plans"), ("", "Re: ")],
)
def test_reply_subject(subject: str, expected: str) -> None:
    assert reply_subject(subject) == expected


@pytest.mark.parametrize(("subject", "expected"), [("Plans", "Fwd: Plans"), ("Fwd: Plans", "Fwd: Plans"), ("FW: Plans", "Fwd: Plans")])
def test_forward_subject(subject: str, expected: str) -> None:
    assert forward_subject(subject) == expected


def test_quote_text_nests_existing_quotes() -> None:
    assert quote_text("a\n> b\n\nc\n") == "> a\n>> b\n>\n> c"


def test_reply_to_sender_only() -> None:
    d = reply(ORIGINAL, "alice@example.com")
    assert d.to == "Bob <bob@example.com>" and d.cc == ""
    assert d.subject == "Re: Plans"
    assert d.in_reply_to == "<m2@example.com>"
    assert d.references == ("<m0@example.com>", "<m1@example.com>", "<m2@example.com>")
    assert "Bob <bob@example.com> wrote:\n> Line one\n>> earlier quote\n>\n> Line three" in d.body


def test_reply_all_excludes_me_and_duplicates() -> None:
    d = reply(ORIGINAL, "Alice@Example.com", reply_all=True)
    assert d.to == "Bob <bob@example.com>"
    assert d.cc == "Dan <dan@example.net>, Carol <carol@example.org>"


def test_reply_honours_reply_to() -> None:
    raw = make_message("List post", sender="bob@example.com").replace(b"From:", b"Reply-To: list@example.com\r\nFrom:", 1)
    assert reply(parse_message(raw), "alice@example.com").to == "list@example.com"


def test_references_are_trimmed() -> None:
    refs = " ".join(f"<r{k}@x>" for k in range(40))
    m = parse_message(make_message("x", references=refs, message_id="<last@x>"))
    d = reply(m, "alice@example.com")
    assert len(d.references) == 20 and d.references[0] == "<r0@x>" and d.references[-1] == "<last@x>"


def test_forward_includes_headers_and_attachments() -> None:
    att = (Attachment("a.txt", "text/plain", b"hi"),)
    d = forward(ORIGINAL, "alice@example.com", att)
    assert d.subject == "Fwd: Re: Plans" and d.to == ""
    assert "From: Bob <bob@example.com>" in d.body and "Line three" in d.body
    assert d.attachments == att and d.in_reply_to == ""


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("bob@example.com", ["bob@example.com"], []),
        ('"Smith, Bob" <bob@example.com>; carol@example.org', ["bob@example.com", "carol@example.org"], []),
        ("bob@example.com, not an address", ["bob@example.com"], ["not an address"]),
        ("bob@", [], ["bob@"]),
        ("@example.com", [], ["@example.com"]),
        ("jörg@bücher.example", ["jörg@bücher.example"], []),
        ("", [], []),
    ],
)
def test_check_addresses(field: str, good: list[str], bad: list[str]) -> None:
    check = check_addresses(field)
    assert [a.email for a in check.addresses] == good
    assert list(check.invalid) == bad


def test_validate_and_recipients() -> None:
    d = Draft(sender="alice@example.com", to="bob@example.com", cc="Bob <BOB@example.com>", bcc="eve@example.net")
    assert validate(d) == []
    assert recipients(d) == ["bob@example.com", "eve@example.net"]
    assert validate(Draft(sender="alice@example.com")) == ["Add at least one recipient."]
    assert "To: not an address: x" in validate(Draft(sender="alice@example.com", to="x"))[0]


def test_build_message_mime_structure() -> None:
    d = Draft(
        sender="alice@example.com",
        to="Bob <bob@example.com>",
        bcc="hidden@example.com",
        subject="Grüße",
        body="Hallo\nWelt",
        in_reply_to="<m1@x>",
        references=("<m0@x>", "<m1@x>"),
        attachments=(Attachment("data.bin", "application/octet-stream", bytes(range(256))),),
    )
    raw = build_message(d, date="Mon, 03 Feb 2025 10:00:00 +0000", message_id="<fixed@example.com>")
    assert b"\r\n" in raw and b"hidden@example.com" not in raw
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert msg["Subject"] == "Grüße" and msg["In-Reply-To"] == "<m1@x>" and msg["References"] == "<m0@x> <m1@x>"
    assert msg.get_content_type() == "multipart/mixed"
    att = next(msg.iter_attachments())
    assert att.get_filename() == "data.bin" and att.get_content() == bytes(range(256))
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Hallo\nWelt\n"
    draft_copy = build_message(d, keep_bcc=True)
    assert b"Bcc: hidden@example.com" in draft_copy
