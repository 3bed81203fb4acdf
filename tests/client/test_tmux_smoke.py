"""Smoke test in a real terminal: the client runs under tmux against a live runtime,
reads a message and replies to it by keys only."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import smtplib
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("rmail.server.runtime") is None:  # pragma: no cover - early project stage
    pytest.skip("rmail.server.runtime is not built yet", allow_module_level=True)

from rmail.client.backend import ImapSmtpBackend
from rmail.client.compose import Draft, build_message
from rmail.client.model import AccountSettings, Security
from tests.conftest import PASSWORD
from tests.helpers.clients import require_client

ROOT = Path(__file__).resolve().parents[2]
SOCKET = f"rmail-client-test-{os.getpid()}"


async def _tmux(*args: str) -> str:
    # A private server socket (-L) keeps the test away from any tmux the user runs.
    proc = await asyncio.create_subprocess_exec("tmux", "-L", SOCKET, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode:
        raise AssertionError(f"tmux {args[0]} failed: {err.decode(errors='replace')}")
    return out.decode(errors="replace")


async def _wait_screen(session: str, needle: str, timeout: float = 20.0) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    screen = ""
    while loop.time() < deadline:
        screen = await _tmux("capture-pane", "-p", "-t", session)
        if needle in screen:
            return screen
        await asyncio.sleep(0.2)
    raise AssertionError(f"{needle!r} never appeared on screen:\n{screen}")


def _send(port: int) -> None:
    raw = build_message(Draft(sender="alice@example.com", to="bob@example.com", subject="Smoke signal", body="Is the fire lit?\n"))
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.login("alice@example.com", PASSWORD)
        s.sendmail("alice@example.com", ["bob@example.com"], raw)


async def test_read_and_reply_in_tmux(runtime, tmp_path: Path) -> None:  # noqa: ANN001
    require_client("tmux")
    await asyncio.to_thread(_send, runtime.port("submission"))
    session = f"rmail-client-{os.getpid()}"
    command = (
        f"cd {ROOT} && RMAIL_CLIENT_CONFIG_DIR={tmp_path} RMAIL_PASSWORD={PASSWORD} {sys.executable} -m rmail.client "
        f"--server 127.0.0.1 --imap-port {runtime.port('imap')} --smtp-port {runtime.port('submission')} "
        f"--security none --user bob@example.com --no-remember"
    )
    await _tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "36", command)
    try:
        await _wait_screen(session, "Smoke signal")
        await _tmux("send-keys", "-t", session, "Enter")
        await _wait_screen(session, "Is the fire lit?")
        await _tmux("send-keys", "-t", session, "r")
        await _wait_screen(session, "ctrl+o adds a file")  # drawn by on_mount, after the body has focus
        await _tmux("send-keys", "-t", session, "-l", "Yes, burning.")
        await _wait_screen(session, "Yes, burning.")
        await _tmux("send-keys", "-t", session, "C-s")
        await _wait_screen(session, "Message sent")
        await _tmux("send-keys", "-t", session, "q")  # reader → list
        await _tmux("send-keys", "-t", session, "q")  # quit
    finally:
        await asyncio.sleep(0.5)
        proc = await asyncio.create_subprocess_exec("tmux", "-L", SOCKET, "kill-server",
                                                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await proc.wait()

    settings = AccountSettings("127.0.0.1", runtime.port("imap"), runtime.port("submission"), Security.NONE, "alice@example.com", timeout=10)
    alice = ImapSmtpBackend(settings, PASSWORD)
    uids = await asyncio.to_thread(alice.folder_uids, "INBOX")
    raw = await asyncio.to_thread(alice.fetch_message, "INBOX", uids[-1])
    await asyncio.to_thread(alice.close)
    assert b"Subject: Re: Smoke signal" in raw and b"Yes, burning." in raw and b"> Is the fire lit?" in raw
