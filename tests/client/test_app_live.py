"""The whole client against a real rmail runtime: live delivery, read, reply, delete, search."""

from __future__ import annotations

import asyncio
import importlib.util
import smtplib

import pytest

if importlib.util.find_spec("rmail.server.runtime") is None:  # pragma: no cover - early project stage
    pytest.skip("rmail.server.runtime is not built yet", allow_module_level=True)

from textual.widgets import TextArea

from rmail.client.app import MailClientApp
from rmail.client.backend import ImapSmtpBackend
from rmail.client.compose import Draft, build_message
from rmail.client.model import AccountSettings, Security
from rmail.client.screens.compose import ComposeScreen
from rmail.client.screens.login import LoginScreen
from rmail.client.screens.main import MainScreen
from rmail.client.screens.reader import ReaderScreen
from rmail.client.widgets.message_list import MessageList
import tests.client.conftest as _c
from tests.client.conftest import settle
async def wait_for(*a, **k):
    import time; t = time.monotonic(); await _c.wait_for(*a, **k); print(f"wait {time.monotonic() - t:.2f}", flush=True)
from tests.conftest import PASSWORD


def _smtp_send(port: int, subject: str, body: str) -> None:
    raw = build_message(Draft(sender="alice@example.com", to="bob@example.com", subject=subject, body=body))
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.login("alice@example.com", PASSWORD)
        s.sendmail("alice@example.com", ["bob@example.com"], raw)


def _app(rt, password: str = PASSWORD) -> MailClientApp:  # noqa: ANN001
    settings = AccountSettings("127.0.0.1", rt.port("imap"), rt.port("submission"), Security.NONE, "bob@example.com", timeout=10)
    return MailClientApp(ImapSmtpBackend, settings=settings, password=password)


async def test_live_mail_read_reply_delete_search(runtime) -> None:  # noqa: ANN001
    app = _app(runtime)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.search is None
                       and bool(app.screen.query_one("#status").render()), timeout=10)
        main = app.screen
        ml = main.query_one(MessageList)
        await asyncio.sleep(0.5)  # let the IDLE connection settle in
        await asyncio.to_thread(_smtp_send, runtime.port("submission"), "Live one", "first body\n")
        await wait_for(pilot, lambda: ml.row_count == 1, timeout=10)  # arrived without a keypress
        await asyncio.to_thread(_smtp_send, runtime.port("submission"), "Live two", "second body\n")
        await wait_for(pilot, lambda: ml.row_count == 2, timeout=10)

        await pilot.press("j", "enter")  # "Live one"
        await wait_for(pilot, lambda: isinstance(app.screen, ReaderScreen) and app.screen.message is not None, timeout=10)
        assert "first body" in app.screen.message.text
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ComposeScreen), timeout=10)
        app.screen.query_one("#body", TextArea).insert("Got it.\n")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, ComposeScreen), timeout=10)
        assert not app.worker_errors

        # The reply is in alice's INBOX and in bob's Sent.
        alice = ImapSmtpBackend(replace_user(app.settings, "alice@example.com"), PASSWORD)
        uids = await asyncio.to_thread(alice.folder_uids, "INBOX")
        raw = await asyncio.to_thread(alice.fetch_message, "INBOX", uids[-1])
        assert b"Subject: Re: Live one" in raw and b"> first body" in raw and b"In-Reply-To: <" in raw
        await asyncio.to_thread(alice.close)
        bob_sent = [f for f in main.folders if f.special_use == "\\Sent"][0].name
        assert len(await asyncio.to_thread(app.backend.folder_uids, bob_sent)) == 1

        # Back in the list: delete "Live two" (the top row) to Trash.
        if isinstance(app.screen, ReaderScreen):
            await pilot.press("q")
        await settle(pilot)
        ml.move_cursor(row=0)
        await pilot.press("d")
        await wait_for(pilot, lambda: ml.row_count == 1, timeout=10)
        trash = [f for f in main.folders if f.special_use == "\\Trash"][0].name
        assert len(await asyncio.to_thread(app.backend.folder_uids, trash)) == 1

        await pilot.press("slash")
        await settle(pilot)
        for ch in "subject:live":
            await pilot.press(ch)
        await pilot.press("enter")
        await wait_for(pilot, lambda: main.search is not None and ml.row_count == 1, timeout=10)
    await asyncio.to_thread(app.close_backend)  # the server shares this loop: never block it


def replace_user(settings: AccountSettings, user: str) -> AccountSettings:
    from dataclasses import replace

    return replace(settings, user=user)


async def test_live_wrong_password_shows_error(runtime) -> None:  # noqa: ANN001
    app = _app(runtime, password="wrong")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: "Wrong user name or password" in str(app.screen.query_one("#login-error").render()), timeout=10)
        assert isinstance(app.screen, LoginScreen)
