"""Console polish: Enter in a confirmation keeps things (every caller), one notice per action,
notices never parse markup, and the Metrics pane's rows."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets._toast import Toast

from rmail.server.metrics import MetricsSummary
from rmail.server.runtime import ServerRuntime
from rmail.tui.app import ConsoleApp
from rmail.tui.screens.confirm import ConfirmScreen
from rmail.tui.widgets.aliases import row_key
from rmail.tui.widgets.metrics import age, metric_rows

from .conftest import rows, wait_for
from .test_panes import relay_runtime, select  # noqa: F401 - the fixture is used by name

Console = tuple[ConsoleApp, Pilot]


async def confirm_with_enter(app: ConsoleApp, pilot: Pilot, key: str = "d") -> str:
    """Open the pane's confirmation with ``key``, press Enter; the safe button's label."""
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.query("#no"))
    screen = app.screen
    safe = screen.query_one("#no")
    assert screen.focused is safe                        # the safe answer has the focus
    await pilot.press("enter")
    await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
    return str(safe.label)  # type: ignore[attr-defined]


async def test_enter_keeps_the_user_and_the_alias(runtime: ServerRuntime) -> None:
    await runtime.aliases.add("example.com", "[bold]x[/bold]", "bob")
    app = ConsoleApp(runtime, first_run=False, tick=0.05)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await app.wait_until_ready()
        await enter_keeps_user_and_alias(app, pilot, runtime)


async def enter_keeps_user_and_alias(app: ConsoleApp, pilot: Pilot, runtime: ServerRuntime) -> None:
    await pilot.press("3")
    await select(app, pilot, "users", "alice@example.com")
    assert await confirm_with_enter(app, pilot) == "Keep"
    assert await runtime.accounts.find_user("alice@example.com") is not None
    await pilot.press("4")
    await select(app, pilot, "aliases", row_key("example.com", "[bold]x[/bold]"))
    await confirm_with_enter(app, pilot)
    assert [r.pattern for r in await runtime.aliases.list("example.com")] == ["[bold]x[/bold]"]
    # And y does remove it, with one notice that shows the pattern as typed.
    await pilot.press("d")
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.press("y")
    await wait_for(pilot, lambda: not rows(app, "aliases"))
    assert [n for n in app.notices if "removed alias" in n[0]] == \
        [("removed alias '[bold]x[/bold]' of example.com", "information")]
    # On screen too, as typed (a notice with markup would show a bold "x").
    await wait_for(pilot, lambda: any("'[bold]x[/bold]'" in str(toast.render()) for toast in app.screen.query(Toast)))


async def test_enter_keeps_the_queue_entry(relay_runtime: ServerRuntime) -> None:  # noqa: F811
    outbound = relay_runtime.delivery.outbound
    [entry] = await outbound.enqueue("alice@example.com", ["x@example.net"], b"Subject: q\r\n\r\nhi\r\n")
    app = ConsoleApp(relay_runtime, first_run=False, tick=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.wait_until_ready()
        await pilot.press("2")
        await wait_for(pilot, lambda: str(entry) in rows(app, "queue"), timeout=10)
        assert await confirm_with_enter(app, pilot) == "Keep"
        assert [e.id for e in await outbound.list()] == [entry]


async def test_one_notice_per_action(console: Console, runtime: ServerRuntime) -> None:
    app, pilot = console
    await pilot.press("3")
    await select(app, pilot, "users", "alice@example.com")
    before = len(app.notices)
    await pilot.press("t")
    await wait_for(pilot, lambda: len(app.notices) > before)
    await pilot.pause(0.3)
    assert app.notices[before:] == [("alice@example.com is now an administrator", "information")]
    # The same warning twice in a row (no selection on an empty pane) shows once while it is up.
    await pilot.press("1")
    before = len(app.notices)
    for _ in range(3):
        await pilot.press("x")
    await pilot.pause(0.2)
    assert app.notices[before:] == [("no connection selected", "warning")]


def test_metrics_rows_read_like_the_scrape() -> None:
    summary = MetricsSummary({"api": 0, "smtp": 3}, 3, 1, {"bounced": 1, "deferred": 2, "delivered": 0},
                             {"imap": 2, "smtp": 0}, {"imap": 1}, 1, 125.0, 4, 0.02,
                             ((0.001, 1), (0.005, 3), (0.01, 4)), 5 << 30, 1 << 30)
    rows_ = metric_rows(summary)
    assert rows_["received"][1] == "api 0 · smtp 3"
    assert rows_["outbound"] == ("Outbound attempts", "bounced 1 · deferred 2 · delivered 0", "red")
    assert rows_["queue"][1] == "1 entry, oldest 2m 05s"
    assert rows_["auth"][1] == "imap 2 · smtp 0"
    assert rows_["commits"][1] == "4, mean 5.0 ms, 50% ≤ 5 ms, 99% ≤ 10 ms"
    assert rows_["storage"] == ("Free space", "5.0 GiB, reserve 1.0 GiB", "")
    empty = metric_rows(MetricsSummary({}, 0, 0, {}, {}, {}, 0, 0.0, 0, 0.0))
    assert empty["queue"][1] == "empty" and empty["commits"][1] == "none yet" and "storage" not in empty
    assert [age(s) for s in (5, 65, 3700, 90000)] == ["5s", "1m 05s", "1h 01m", "1d 01h"]


async def test_the_metrics_pane_fills_from_the_embedded_server(console: Console) -> None:
    app, pilot = console
    await pilot.press("6")
    await wait_for(pilot, lambda: "sessions" in rows(app, "metrics"))
    assert rows(app, "metrics")[:3] == ["received", "delivered", "queued"]
