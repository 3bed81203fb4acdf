"""Pilot tests of the panes against a live runtime: what the server does shows up, and what the
console does changes the server."""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

import pytest
from textual.pilot import Pilot

from rmail.server.core.errors import AuthenticationFailed
from rmail.server.core.events import LogRecord
from rmail.server.runtime import ServerRuntime
from rmail.tui.app import ConsoleApp
from rmail.tui.screens.confirm import ConfirmScreen
from rmail.tui.screens.form import FormScreen
from rmail.tui.screens.password import ChangePasswordScreen
from rmail.tui.screens.resolve import ResolveScreen
from rmail.tui.screens.user_add import AddUserScreen
from rmail.tui.widgets.aliases import row_key

from ..conftest import PASSWORD
from .conftest import cells, has_service, require_service, rows, wait_for

Console = tuple[ConsoleApp, Pilot]


async def fill(pilot: Pilot, values: dict[str, str]) -> None:
    """Set form fields, leaving the focus in the last one (Enter then submits, as when typing)."""
    screen = pilot.app.screen
    for input_id, value in values.items():
        field = screen.query_one(f"#{input_id}")
        field.value = value  # type: ignore[attr-defined]
        field.focus()
    await pilot.pause()


async def select(app: ConsoleApp, pilot: Pilot, tab: str, key: str) -> None:
    await wait_for(pilot, lambda: key in rows(app, tab))
    table = app.pane(tab).table  # type: ignore[union-attr]
    table.move_cursor(row=table.get_row_index(key))
    await pilot.pause()


async def test_smtp_session_shows_in_connections_and_goes_away(console: Console, runtime: ServerRuntime) -> None:
    require_service("smtp")
    app, pilot = console
    port = runtime.port("smtp")
    smtp = await asyncio.to_thread(smtplib.SMTP, "127.0.0.1", port, "client.example.org", 5)
    try:
        await asyncio.to_thread(smtp.ehlo, "client.example.org")
        await wait_for(pilot, lambda: any(r[1] == "smtp" for r in cells(app, "connections")))
        row = next(r for r in cells(app, "connections") if r[1] == "smtp")
        assert row[2] == "127.0.0.1"
    finally:
        await asyncio.to_thread(smtp.quit)
    await wait_for(pilot, lambda: not rows(app, "connections"))


async def test_disconnect_selected_connection(console: Console, runtime: ServerRuntime) -> None:
    require_service("smtp")
    app, pilot = console
    smtp = await asyncio.to_thread(smtplib.SMTP, "127.0.0.1", runtime.port("smtp"), "client.example.org", 5)
    try:
        await wait_for(pilot, lambda: rows(app, "connections"))
        app.pane("connections").table.focus()
        await pilot.press("x")
        await wait_for(pilot, lambda: not rows(app, "connections"))
        assert len(runtime.connections) == 0
    finally:
        smtp.close()


async def test_add_user_form_lets_the_user_log_in(console: Console, runtime: ServerRuntime) -> None:
    app, pilot = console
    await pilot.press("3")
    await wait_for(pilot, lambda: "alice@example.com" in rows(app, "users"))
    await pilot.press("a")
    await wait_for(pilot, lambda: isinstance(app.screen, AddUserScreen))
    # Mismatched passwords: the form says so and stays open.
    await fill(pilot, {"address": "carol@example.com", "password": "one", "password2": "two"})
    await pilot.click("#submit")
    await wait_for(pilot, lambda: "differ" in str(app.screen.query_one(".error").render()))
    assert isinstance(app.screen, AddUserScreen)
    await fill(pilot, {"password": "carol-pass", "password2": "carol-pass"})
    await pilot.press("enter")
    await wait_for(pilot, lambda: not isinstance(app.screen, FormScreen))
    await wait_for(pilot, lambda: "carol@example.com" in rows(app, "users"))
    account = await runtime.accounts.authenticate("carol@example.com", "carol-pass")
    assert not account.admin
    if has_service("imap"):
        from imapclient import IMAPClient

        def imap_login() -> list:
            with IMAPClient("127.0.0.1", port=runtime.port("imap"), ssl=False, timeout=5) as client:
                client.login("carol@example.com", "carol-pass")
                return client.list_folders()
        assert await asyncio.to_thread(imap_login)


async def test_add_user_error_is_shown_inline(console: Console) -> None:
    app, pilot = console
    await pilot.press("3", "a")
    await wait_for(pilot, lambda: isinstance(app.screen, AddUserScreen))
    await fill(pilot, {"address": "alice@example.com", "password": "x", "password2": "x"})
    await pilot.click("#submit")
    await wait_for(pilot, lambda: "already exists" in str(app.screen.query_one(".error").render()))
    await pilot.press("escape")
    await wait_for(pilot, lambda: not isinstance(app.screen, FormScreen))


async def test_password_admin_and_remove(console: Console, runtime: ServerRuntime) -> None:
    app, pilot = console
    await pilot.press("3")
    await select(app, pilot, "users", "alice@example.com")
    await pilot.press("p")
    await wait_for(pilot, lambda: isinstance(app.screen, ChangePasswordScreen))
    await fill(pilot, {"password": "new-pass", "password2": "new-pass"})
    await pilot.click("#submit")
    await wait_for(pilot, lambda: not isinstance(app.screen, FormScreen))
    await runtime.accounts.authenticate("alice@example.com", "new-pass")

    await pilot.press("t")
    await wait_for(pilot, lambda: cells(app, "users")[0][1] == "admin")
    assert (await runtime.accounts.get_user("alice@example.com")).admin

    await pilot.press("d")
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.press("n")          # No keeps the user
    await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
    assert await runtime.accounts.find_user("alice@example.com") is not None
    await pilot.press("d")
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.press("y")
    await wait_for(pilot, lambda: "alice@example.com" not in rows(app, "users"))
    assert await runtime.accounts.find_user("alice@example.com") is None
    with pytest.raises(AuthenticationFailed):
        await runtime.accounts.authenticate("alice@example.com", "new-pass")


async def routes(runtime: ServerRuntime, address: str) -> str | None:
    resolution = await runtime.aliases.resolve(address)
    return resolution.account.address if resolution.account else None


async def test_alias_add_move_remove_change_routing(console: Console, runtime: ServerRuntime) -> None:
    app, pilot = console
    await pilot.press("4", "a")
    await wait_for(pilot, lambda: isinstance(app.screen, FormScreen))
    assert app.screen.query_one("#domain").value == "example.com"  # type: ignore[attr-defined]
    await fill(pilot, {"pattern": "sales-.*", "target": "alice"})
    await pilot.click("#submit")
    await wait_for(pilot, lambda: row_key("example.com", "sales-.*") in rows(app, "aliases"))
    assert await routes(runtime, "sales-eu@example.com") == "alice@example.com"

    await pilot.press("a")
    await wait_for(pilot, lambda: isinstance(app.screen, FormScreen))
    await fill(pilot, {"pattern": ".*", "target": "bob@example.com"})
    await pilot.press("enter")
    await wait_for(pilot, lambda: len(rows(app, "aliases")) == 2)
    assert await routes(runtime, "sales-eu@example.com") == "alice@example.com"   # first rule wins

    # Move the catch-all above sales-.*: it now catches sales-eu too.
    await select(app, pilot, "aliases", row_key("example.com", ".*"))
    await pilot.press("shift+up")
    await wait_for(pilot, lambda: rows(app, "aliases")[0] == row_key("example.com", ".*"))
    assert await routes(runtime, "sales-eu@example.com") == "bob@example.com"
    assert cells(app, "aliases")[0][1] == "1"

    # The dry run says so, in the resolver's own words.
    await pilot.press("w")
    await wait_for(pilot, lambda: isinstance(app.screen, ResolveScreen))
    await fill(pilot, {"address": "sales-eu@example.com"})
    expected = (await runtime.aliases.resolve("sales-eu@example.com")).describe()
    await wait_for(pilot, lambda: str(app.screen.query_one("#result").render()) == expected)
    await pilot.press("escape")
    await wait_for(pilot, lambda: not isinstance(app.screen, ResolveScreen))

    # Remove the catch-all: sales-eu goes back to alice; nobody@ is refused.
    await pilot.press("d")
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.press("y")
    await wait_for(pilot, lambda: len(rows(app, "aliases")) == 1)
    assert await routes(runtime, "sales-eu@example.com") == "alice@example.com"
    assert await routes(runtime, "nobody@example.com") is None


async def test_invalid_alias_pattern_is_refused_inline(console: Console) -> None:
    app, pilot = console
    await pilot.press("4", "a")
    await wait_for(pilot, lambda: isinstance(app.screen, FormScreen))
    await fill(pilot, {"pattern": "(a+)+", "target": "alice"})
    await pilot.click("#submit")
    await wait_for(pilot, lambda: "nests quantifiers" in str(app.screen.query_one(".error").render()))


async def test_changes_made_elsewhere_show_up(console: Console, runtime: ServerRuntime) -> None:
    """A user added by another part of the server (REST, CLI) appears without a keypress."""
    app, pilot = console
    await pilot.press("3")
    await runtime.accounts.add_user("dave@example.com", PASSWORD)
    await wait_for(pilot, lambda: "dave@example.com" in rows(app, "users"))
    await runtime.aliases.add("example.com", "d-.*", "dave")
    await pilot.press("4")
    await wait_for(pilot, lambda: row_key("example.com", "d-.*") in rows(app, "aliases"))


async def test_log_pane_shows_and_filters_records(console: Console, runtime: ServerRuntime) -> None:
    app, pilot = console
    await pilot.press("5")
    runtime.bus.publish(LogRecord("INFO", "rmail.smtp", "hello [bold]not markup[/bold]", 0.0))
    runtime.bus.publish(LogRecord("WARNING", "rmail.imap", "imap trouble", 0.0))
    log = app.pane("log")
    await wait_for(pilot, lambda: len(log.records) >= 2)
    from textual.widgets import RichLog
    text = "\n".join(line.text for line in log.query_one(RichLog).lines)
    assert "hello [bold]not markup[/bold]" in text
    assert "imap trouble" in text
    await pilot.press("v", "v")                # INFO -> WARNING -> ERROR
    assert log.level == "ERROR"
    text = "\n".join(line.text for line in log.query_one(RichLog).lines)
    assert "imap trouble" not in text
    await pilot.press("v", "v", "p", "p")      # DEBUG, then protocol smtp -> imap
    assert (log.level, log.protocol) == ("INFO", "imap")
    text = "\n".join(line.text for line in log.query_one(RichLog).lines)
    assert "imap trouble" in text and "hello" not in text


async def test_palette_runs_pane_actions(console: Console) -> None:
    app, pilot = console
    await pilot.press("ctrl+p")
    await pilot.pause(0.2)
    await pilot.press(*"add a user")
    await pilot.pause(0.3)
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, AddUserScreen))
    assert app.query_one("TabbedContent").active == "users"  # type: ignore[attr-defined]


@pytest.fixture
async def relay_runtime(tmp_path: Path):  # noqa: ANN201
    """SMTP with a smarthost that refuses connections: remote mail stays queued."""
    import socket

    from ..helpers.server import make_config
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    config = make_config(tmp_path / "data", relay={"host": "127.0.0.1", "port": dead_port, "tls": "none"})
    async with ServerRuntime(config, auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        yield rt


async def test_queue_shows_entry_and_retry_delete_work(relay_runtime: ServerRuntime) -> None:
    require_service("smtp")
    runtime = relay_runtime
    outbound = runtime.delivery.outbound
    assert outbound is not None
    [entry_id] = await outbound.enqueue("alice@example.com", ["someone@example.net"],
                                        b"From: alice@example.com\r\nSubject: queued\r\n\r\nhi\r\n")
    app = ConsoleApp(runtime, first_run=False, tick=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.wait_until_running()
        await pilot.press("2")
        key = str(entry_id)
        await wait_for(pilot, lambda: key in rows(app, "queue"), timeout=10)
        row = cells(app, "queue")[0]
        assert row[1:3] == ["alice@example.com", "someone@example.net"]
        await wait_for(pilot, lambda: int(cells(app, "queue")[0][4]) >= 1, timeout=10)
        tries = int(cells(app, "queue")[0][4])
        await pilot.press("r")
        await wait_for(pilot, lambda: int(cells(app, "queue")[0][4]) > tries, timeout=10)
        await pilot.press("v")
        await wait_for(pilot, lambda: "Subject: queued" in str(app.screen.query_one("#header").render())
                       if app.screen.query("#header") else False)
        await pilot.press("escape")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: not rows(app, "queue"))
        assert await outbound.list() == []
