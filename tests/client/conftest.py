"""Fixtures for the mail client tests: a fake server with fixed mail, and Pilot helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from rmail.client.accounts import AccountStore
from rmail.client.app import MailClientApp
from rmail.client.model import AccountSettings, Security
from tests.client.fake_backend import FakeServer, make_message


@pytest.fixture(autouse=True)
def _hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests away from the real config dir and from a password in the environment."""
    monkeypatch.setenv("RMAIL_CLIENT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("RMAIL_PASSWORD", raising=False)


SETTINGS = AccountSettings("localhost", 10143, 10587, Security.NONE, "alice@example.com")


@pytest.fixture
def server() -> FakeServer:
    s = FakeServer()
    s.deliver(
        "INBOX",
        make_message("Quarterly report", sender="Bob <bob@example.com>", message_id="<q1@example.com>",
                     body="The numbers are in.\nSee attached.\n", date="Mon, 03 Feb 2025 09:00:00 +0000",
                     cc="carol@example.com", attachment=("report.pdf", b"%PDF-1.4 fake")),
        ["\\Seen"],
    )
    s.deliver(
        "INBOX",
        make_message("Re: Quarterly report", sender="Carol <carol@example.com>", message_id="<q2@example.com>",
                     in_reply_to="<q1@example.com>", references="<q1@example.com>",
                     body="Looks good.\n", date="Mon, 03 Feb 2025 10:00:00 +0000"),
    )
    s.deliver(
        "INBOX",
        make_message("Lunch [friday]?", sender="Dave <dave@example.org>", message_id="<l1@example.org>",
                     html="<p>Shall we get <b>lunch</b> on Friday?</p><ul><li>pizza</li><li>sushi</li></ul>",
                     date="Tue, 04 Feb 2025 12:30:00 +0000"),
    )
    return s


def make_app(server: FakeServer, *, password: str | None = "secret", page_size: int = 200, accounts: bool = False,
             tmp: Path | None = None) -> MailClientApp:
    return MailClientApp(
        server.factory,
        settings=SETTINGS,
        password=password,
        accounts=AccountStore(tmp / "accounts.json") if accounts and tmp else None,
        page_size=page_size,
        download_dir=tmp,
    )


async def settle(pilot: Pilot[None], rounds: int = 4) -> None:
    """Let workers (except the long-lived IDLE one) finish and their results land."""
    app = pilot.app
    for _ in range(rounds):
        busy = [w for w in app.workers if w.group != "idle" and not w.is_finished]
        if busy:
            await app.workers.wait_for_complete(busy)
        await pilot.pause()


async def wait_for(pilot: Pilot[None], condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` while the app runs (for results of background workers)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await settle(pilot, 1)
        await asyncio.sleep(0.02)
