"""Reply finishing (RFC 2034 enhanced codes, no control characters) and the Received header."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from rmail.server.core.errors import InvalidInput, NotFound, PermissionDenied, TemporaryFailure
from rmail.server.smtp.received import TraceInfo, received_header, safe_helo, with_protocol
from rmail.server.smtp.replies import error_reply, finish_reply


@pytest.mark.parametrize("status, expected", [
    ("250 OK", b"250 2.0.0 OK"),
    ("503 Error: need MAIL command", b"503 5.5.1 Error: need MAIL command"),
    ("552 Error: Too much mail data", b"552 5.3.4 Error: Too much mail data"),
    ("250 2.1.0 Sender OK", b"250 2.1.0 Sender OK"),              # already has one
    ("354 End data with <CR><LF>.<CR><LF>", b"354 End data with <CR><LF>.<CR><LF>"),
    ("334 ", b"334 "),
    ("550 5.1.1 evil\r\n250 forged", b"550 5.1.1 evil??250 forged"),   # no reply injection
    ("550 5.1.1 bad \udcff byte", b"550 5.1.1 bad ? byte"),              # lone surrogate from the wire
])
def test_finish_reply(status: str, expected: bytes) -> None:
    assert finish_reply(status) == expected


def test_greeting_and_ehlo_lines_stay_raw() -> None:
    assert finish_reply("250-mail.example.com", enhanced=False) == b"250-mail.example.com"


@pytest.mark.parametrize("exc, recipient, prefix", [
    (NotFound("no mailbox"), True, "550 5.1.1"),
    (PermissionDenied("relay"), True, "554 5.7.1"),
    (InvalidInput("bad"), True, "501 5.1.3"),
    (TemporaryFailure("busy"), False, "451 4.3.0"),
])
def test_error_reply(exc, recipient: bool, prefix: str) -> None:
    assert error_reply(exc, recipient=recipient).startswith(prefix)


@pytest.mark.parametrize("info, expected", [
    (TraceInfo("h", "1.2.3.4", "mx", esmtp=False), "SMTP"),
    (TraceInfo("h", "1.2.3.4", "mx", esmtp=True), "ESMTP"),
    (TraceInfo("h", "1.2.3.4", "mx", esmtp=True, tls_version="TLSv1.3"), "ESMTPS"),
    (TraceInfo("h", "1.2.3.4", "mx", esmtp=True, user="a@b.c"), "ESMTPA"),
    (TraceInfo("h", "1.2.3.4", "mx", esmtp=True, tls_version="TLSv1.3", user="a@b.c"), "ESMTPSA"),
    (TraceInfo("h", "1.2.3.4", "mx", esmtp=True, smtputf8=True), "UTF8SMTP"),
])
def test_with_protocol(info: TraceInfo, expected: str) -> None:
    assert with_protocol(info) == expected


def test_received_header_shape() -> None:
    info = TraceInfo("client.example.net", "::1", "mail.example.com", esmtp=True, tls_version="TLSv1.3",
                     tls_cipher="TLS_AES_256_GCM_SHA384", tls_bits=256, user="alice@example.com",
                     recipients=("bob@example.com",))
    when = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
    assert received_header(info, "abc123", when) == (
        b"Received: from client.example.net ([IPv6:::1])\r\n"
        b"\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256 bits))\r\n"
        b"\t(authenticated as alice@example.com)\r\n"
        b"\tby mail.example.com (rmail) with ESMTPSA id abc123\r\n"
        b"\tfor <bob@example.com>; Sat, 01 Mar 2025 12:00:00 +0000\r\n")


def test_helo_name_is_sanitised() -> None:
    assert safe_helo("evil\r\nX-Injected: yes") == "evil??X-Injected:?yes"
    assert safe_helo("") == "unknown"
    assert len(safe_helo("a" * 1000)) == 255
