"""Console test helpers: run the app against a live runtime and wait for the UI to catch up."""

from __future__ import annotations

import asyncio
import importlib
import time
from typing import AsyncIterator, Callable

import pytest
from textual.pilot import Pilot

from rmail.server.runtime import ServerRuntime
from rmail.tui.app import ConsoleApp


def has_service(name: str) -> bool:
    """Whether the protocol service ``rmail.server.<name>`` is built (it has ``start``)."""
    try:
        module = importlib.import_module(f"rmail.server.{name}")
    except ImportError:
        return False
    return callable(getattr(module, "start", None))


def require_service(name: str) -> None:
    if not has_service(name):
        pytest.skip(f"rmail.server.{name} is not built yet")


async def wait_for(pilot: Pilot, condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Let the app run until ``condition()`` is true (the UI refreshes a few times a second)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {getattr(condition, '__name__', 'condition')}")
        await pilot.pause(0.05)


def rows(app: ConsoleApp, tab: str) -> list[str]:
    return [key.value for key in app.pane(tab).table.rows]  # type: ignore[union-attr]


def cells(app: ConsoleApp, tab: str) -> list[list[str]]:
    table = app.pane(tab).table  # type: ignore[union-attr]
    return [[str(c) for c in table.get_row(key)] for key in table.rows]


@pytest.fixture
async def console(runtime: ServerRuntime) -> AsyncIterator[tuple[ConsoleApp, Pilot]]:
    """The console at 100x30 showing the shared ``runtime`` fixture (alice@, admin bob@example.com)."""
    app = ConsoleApp(runtime, first_run=False, tick=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.wait_until_running()
        yield app, pilot


async def in_thread(fn: Callable, *args: object) -> object:
    """Blocking stdlib clients (smtplib, IMAPClient) run off the loop the server shares."""
    return await asyncio.to_thread(fn, *args)
