"""SVG snapshots of the main screens with fixed data (dates years in the past, so they render
as YYYY-MM-DD whatever today is). Textual is pinned in pyproject.toml for these."""

from __future__ import annotations

from textual.pilot import Pilot

from rmail.client.screens.compose import ComposeScreen
from rmail.client.screens.main import MainScreen
from rmail.client.screens.reader import ReaderScreen
from rmail.client.widgets.message_list import MessageList
from tests.client.conftest import make_app, settle, wait_for
from tests.client.fake_backend import FakeServer, make_message

SIZE = (110, 30)


def fixed_server() -> FakeServer:
    s = FakeServer()
    s.deliver("INBOX", make_message("Quarterly report", sender="Bob Builder <bob@example.com>", message_id="<q1@example.com>",
                                    body="The numbers are in.\nRevenue is up [bold]3%[/bold].\n", cc="carol@example.com",
                                    date="Mon, 03 Feb 2020 12:00:00 +0000", attachment=("report.pdf", b"%PDF-1.4 fake")), ["\\Seen"])
    s.deliver("INBOX", make_message("Re: Quarterly report", sender="Carol <carol@example.com>", message_id="<q2@example.com>",
                                    in_reply_to="<q1@example.com>", references="<q1@example.com>", body="Looks good.\n",
                                    date="Tue, 04 Feb 2020 12:00:00 +0000"), ["\\Seen", "\\Flagged"])
    s.deliver("INBOX", make_message("Lunch on Friday?", sender="Dave <dave@example.org>", message_id="<l1@example.org>",
                                    body="Pizza or sushi?\n", date="Wed, 05 Feb 2020 12:00:00 +0000"))
    return s


async def _loaded(pilot: Pilot[None]) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.query_one(MessageList).row_count == 3)
    await settle(pilot)


def test_main_screen(snap_compare) -> None:  # noqa: ANN001
    async def run_before(pilot: Pilot[None]) -> None:
        await _loaded(pilot)
        await pilot.press("t")  # threads on
        await settle(pilot)

    assert snap_compare(make_app(fixed_server()), terminal_size=SIZE, run_before=run_before)


def test_reader_screen(snap_compare) -> None:  # noqa: ANN001
    async def run_before(pilot: Pilot[None]) -> None:
        await _loaded(pilot)
        await pilot.press("j", "j", "enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ReaderScreen) and pilot.app.screen.message is not None)
        await settle(pilot)

    assert snap_compare(make_app(fixed_server()), terminal_size=SIZE, run_before=run_before)


def test_reply_compose_screen(snap_compare) -> None:  # noqa: ANN001
    async def run_before(pilot: Pilot[None]) -> None:
        await _loaded(pilot)
        await pilot.press("j", "j", "R")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ComposeScreen))
        await settle(pilot)

    assert snap_compare(make_app(fixed_server()), terminal_size=SIZE, run_before=run_before)
