"""Return-Path (RFC 5321 §4.4): written at local delivery with the envelope sender, replacing
any the message arrived with; never on remote copies, never on APPEND."""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

import aiosmtplib
import pytest

from rmail.server.core.tracefields import drop_fields, return_path, without_return_path
from rmail.server.runtime import ServerRuntime
from tests.helpers.server import make_config

from .conftest import PASSWORD, inbox
from .sink import eventually, start_sink, stop_sink

BODY = b"From: carol@example.net\r\nTo: alice@example.com\r\nSubject: rp\r\n\r\nReturn-Path: <in-body@x>\r\n"


def _send(port: int, sender: str, data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("client.example.net")
        s.sendmail(sender, ["alice@example.com"], data)


@pytest.mark.parametrize("sender, line", [
    ("carol@example.net", b"Return-Path: <carol@example.net>\r\n"),
    ("<>", b"Return-Path: <>\r\n"),
], ids=["sender", "null-sender"])
async def test_local_delivery_starts_with_return_path(runtime: ServerRuntime, sender: str, line: bytes) -> None:
    await asyncio.to_thread(_send, runtime.port("smtp"), sender, BODY)
    [stored] = await inbox(runtime, "alice@example.com")
    assert stored.startswith(line + b"Authentication-Results: mail.example.com;")
    assert stored.count(b"Return-Path:") == 2       # ours, and the one in the body stays untouched
    assert stored.endswith(BODY)


async def test_incoming_return_path_fields_are_replaced(runtime: ServerRuntime) -> None:
    forged = (b"Return-Path: <forged@evil.example>\r\nSubject: x\r\nreturn-path:\r\n <also@evil.example>\r\n"
              b"\r\nbody\r\n")
    await asyncio.to_thread(_send, runtime.port("smtp"), "carol@example.net", forged)
    [stored] = await inbox(runtime, "alice@example.com")
    assert b"evil.example" not in stored
    assert stored.startswith(b"Return-Path: <carol@example.net>\r\n")
    assert stored.endswith(b"Subject: x\r\n\r\nbody\r\n")


async def test_remote_copy_has_no_return_path(tmp_path: Path) -> None:
    """Local and remote copies share one blob (one transaction); the relayed bytes leave
    without the Return-Path of the local delivery."""
    sink = await start_sink()
    cfg = make_config(tmp_path / "d", relay={"host": "127.0.0.1", "port": sink.port, "tls": "none"})
    try:
        async with ServerRuntime(cfg, auth_delay=0) as rt:
            await rt.accounts.add_user("alice@example.com", PASSWORD)
            await rt.accounts.add_user("bob@example.com", PASSWORD)
            async with aiosmtplib.SMTP(hostname="127.0.0.1", port=rt.port("submission")) as client:
                await client.login("alice@example.com", PASSWORD)
                await client.sendmail("alice@example.com", ["bob@example.com", "dave@remote.example.org"],
                                      b"From: alice@example.com\r\nSubject: both\r\n\r\nhi\r\n")
            await eventually(lambda: sink.messages)
            [relayed] = sink.messages
            assert b"Return-Path" not in relayed.data.split(b"\r\n\r\n", 1)[0]
            [local] = await inbox(rt, "bob@example.com")
            assert local.startswith(b"Return-Path: <alice@example.com>\r\n")
            assert local.endswith(relayed.data.split(b"\r\nSubject: both", 1)[1])
    finally:
        await stop_sink(sink)


async def test_append_stores_bytes_unchanged(runtime: ServerRuntime) -> None:
    account = await runtime.accounts.get_user("alice@example.com")
    box = await runtime.store.get_mailbox(account.id, "INBOX")
    await runtime.store.append(box.id, BODY)
    assert await inbox(runtime, "alice@example.com") == [BODY]


def test_field_edits_touch_only_the_header() -> None:
    data = b"A: 1\r\nReturn-Path: <x>\r\n\tfolded\r\nB: 2\r\n\r\nReturn-Path: <body>\r\n"
    assert without_return_path(data) == b"A: 1\r\nB: 2\r\n\r\nReturn-Path: <body>\r\n"
    plain = b"A: 1\r\n\r\nbody"
    assert without_return_path(plain) is plain
    assert drop_fields(plain, lambda f: False) is plain
    assert return_path("a\r\nb@x") == b"Return-Path: <ab@x>\r\n"
