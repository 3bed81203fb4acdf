"""Benchmark parse_message and body_section on typical 2 KiB and 100 KiB messages.

Run: .venv/bin/python bench/mime_bench.py
"""

from __future__ import annotations

import base64
import os
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rmail.server.core.mime import body_section, message_view, parse_message  # noqa: E402

HEADER = (
    "Return-Path: <alice@example.org>\r\n"
    "Received: from mx.example.org (mx.example.org [192.0.2.1])\r\n"
    "\tby mail.example.com with ESMTPS id 4Xyz; Tue, 2 Jan 2024 10:00:00 +0000\r\n"
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=s1;\r\n"
    "\th=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n"
    "\tb=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSBidXQgbG9va3MgbGlrZSBvbmU=\r\n"
    "From: =?utf-8?q?Alice_M=C3=BCller?= <alice@example.org>\r\n"
    "To: Bob <bob@example.com>, carol@example.com\r\n"
    "Cc: team: dave@example.com, erin@example.com;\r\n"
    "Subject: =?utf-8?b?UXVhcnRlcmx5IHJlcG9ydCDigJMgZHJhZnQ=?=\r\n"
    "Date: Tue, 2 Jan 2024 10:00:00 +0100\r\n"
    "Message-ID: <20240102100000.1234@example.org>\r\n"
    "In-Reply-To: <prev@example.com>\r\n"
    "References: <first@example.com> <prev@example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/alternative; boundary="==b1=="\r\n'
    "\r\n"
)


def small_message() -> bytes:
    text = "Hello Bob,\r\n\r\nplease find the draft numbers below. " * 12
    html = "<html><body><p>Hello Bob,</p><p>please find the <b>draft</b> numbers.</p>" * 6
    body = (
        "--==b1==\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n" + text + "\r\n"
        "--==b1==\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html + "</body></html>\r\n"
        "--==b1==--\r\n"
    )
    data = (HEADER + body).encode()
    return data[:2048] if len(data) > 2048 else data


def large_message() -> bytes:
    attachment = base64.encodebytes(os.urandom(70 * 1024)).replace(b"\n", b"\r\n")
    head = HEADER.replace("multipart/alternative", "multipart/mixed").encode()
    text = b"Report attached. " * 200
    return (
        head
        + b"--==b1==\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + b"\r\n"
        + b"--==b1==\r\nContent-Type: application/pdf; name=r.pdf\r\n"
        + b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=r.pdf\r\n\r\n"
        + attachment
        + b"--==b1==--\r\n"
    )  # fmt: skip


def per_call_us(fn: object, number: int) -> float:
    # CPU time, best of 5: on a shared machine wall time mostly measures the
    # neighbours; CPU time per message is what delivery throughput needs.
    timer = timeit.Timer(fn, timer=time.process_time)  # type: ignore[arg-type]
    best = min(timer.repeat(repeat=5, number=number))
    return best / number * 1e6


def main() -> None:
    for label, data, number in (
        ("2 KiB", small_message(), 2000),
        ("100 KiB", large_message(), 200),
    ):
        parse = per_call_us(lambda: parse_message(data), number)
        section = per_call_us(lambda: body_section(data, (2,), "MIME"), number)
        view = per_call_us(lambda: message_view(data), number)
        print(
            f"{label:>8} ({len(data):6d} B): parse_message {parse:8.1f} µs"
            f" ({1e6 / parse:7.0f} msg/s)  body_section[2.MIME] {section:7.1f} µs"
            f"  message_view {view:8.1f} µs"
        )


if __name__ == "__main__":
    main()
