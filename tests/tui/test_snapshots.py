"""SVG snapshots of the panes with fixed data and a fixed clock (textual is pinned exactly).

Update after an intended change: pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Callable

import pytest
from textual.pilot import Pilot

from rmail.server.core.events import LogRecord
from rmail.server.runtime import Listener, ServerRuntime
from rmail.tui.app import ConsoleApp

from ..helpers.server import make_config
from .conftest import wait_for

NOW = 1_767_225_600.0            # 2026-01-01 00:00:00 UTC


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    async def seed() -> None:
        async with ServerRuntime(make_config(tmp_path / "data"), auth_delay=0, services=()) as rt:
            await rt.accounts.add_user("alice@example.com", "pw")
            await rt.accounts.add_user("bob@example.com", "pw", admin=True)
            await rt.accounts.add_user("carol@example.org", "pw")
            await rt.aliases.add("example.com", "sales-.*", "alice")
            await rt.aliases.add("example.com", "[bold]x[/bold]", "bob")
            await rt.aliases.add("example.com", ".*", "bob")
    asyncio.run(seed())
    return tmp_path / "data"


def fixed_app(data_dir: Path, **kwargs: object) -> ConsoleApp:
    app = ConsoleApp(lambda: ServerRuntime(make_config(data_dir), auth_delay=0, services=()),
                     clock=lambda: NOW, first_run=False, **kwargs)  # type: ignore[arg-type]
    # The tab underline slides for 0.3 s after a switch; on a busy machine a snapshot could
    # catch it mid-way. Without animation it is drawn at its final place at once.
    app.animation_level = "none"
    return app


def setup(tab: str, ready: Callable[[ConsoleApp], object]) -> Callable[[Pilot], object]:
    async def run_before(pilot: Pilot) -> None:
        app: ConsoleApp = pilot.app  # type: ignore[assignment]
        rt = await app.wait_until_running()
        rt.started = NOW - 3723
        for listener in (Listener("smtp", "127.0.0.1", 25, "starttls"), Listener("submission", "127.0.0.1", 587,
                         "starttls"), Listener("smtps", "127.0.0.1", 465, "implicit"),
                         Listener("imap", "127.0.0.1", 143, "starttls"), Listener("imaps", "::1", 993, "implicit"),
                         Listener("api", "127.0.0.1", 9002, "none")):
            rt.add_listener(listener)
        rt.counters.received, rt.counters.delivered, rt.counters.queued = 42, 40, 2
        rt.counters.auth_failures = 3
        for protocol, peer, user, state in (("smtp", "192.0.2.7", None, "DATA"),
                                            ("imap", "198.51.100.4", "alice@example.com", "IDLE"),
                                            ("submission", "203.0.113.9", "[red]evil[/red]", "MAIL")):
            info = rt.connections.open(protocol, 25, peer, protocol != "smtp")
            rt.connections.update(info, user=user, state=state, bytes_in=2048, bytes_out=512, force=True)
            info.since = NOW - 60
        for level, logger, message in (("INFO", "rmail.smtp", "smtp listening on 127.0.0.1:25 (STARTTLS)"),
                                       ("WARNING", "rmail.imap", "auth failure from 198.51.100.4 [user=x]"),
                                       ("ERROR", "rmail.queue", "example.net: connection refused")):
            rt.bus.publish(LogRecord(level, logger, message, NOW - 5))
        await pilot.press(tab)
        await wait_for(pilot, lambda: ready(app))
        app.refresh_header()
        await pilot.pause(0.3)
    return run_before


def test_connections_pane(data_dir: Path, snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(fixed_app(data_dir), terminal_size=(80, 24),
                        run_before=setup("1", lambda app: app.pane("connections").table.row_count == 3))


def test_users_pane(data_dir: Path, snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(fixed_app(data_dir), terminal_size=(80, 24),
                        run_before=setup("3", lambda app: app.pane("users").table.row_count == 3))


def test_aliases_pane_wide(data_dir: Path, snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(fixed_app(data_dir), terminal_size=(100, 30),
                        run_before=setup("4", lambda app: app.pane("aliases").table.row_count == 3))


def test_log_pane(data_dir: Path, snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(fixed_app(data_dir), terminal_size=(80, 24),
                        run_before=setup("5", lambda app: len(app.pane("log").records) == 3))


def test_queue_pane_empty(data_dir: Path, snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(fixed_app(data_dir), terminal_size=(80, 24),
                        run_before=setup("2", lambda app: app.pane("queue").loads > 0))
