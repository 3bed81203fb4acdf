"""What keeps keys quick under load: the table re-renders only changed cells, the key bar never
remounts widgets, and a pane shown again catches up without redrawing everything."""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import Static

from rmail.server.core.events import LogRecord
from rmail.tui.app import ConsoleApp
from rmail.tui.tables import sync_table
from rmail.tui.widgets.keys import KeyBar
from rmail.tui.widgets.log import REDRAW
from rmail.tui.widgets.table import ConsoleTable

from .conftest import wait_for

Console = tuple[ConsoleApp, Pilot]


def table_rows(n: int, tag: str = "") -> dict[str, tuple[Text, ...]]:
    return {str(i): (Text(str(i)), Text(f"peer-{i}{tag}"), Text("IDLE")) for i in range(n)}


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        table = ConsoleTable(cursor_type="row")
        table.add_columns("ID", "Peer", "State")
        yield table
        yield Static("other", id="other")
        yield KeyBar()


async def test_updating_one_cell_renders_only_that_cell() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 20)) as pilot:
        table = app.query_one(ConsoleTable)
        rows = table_rows(100)
        sync_table(table, rows)
        await pilot.pause()
        assert table.cells_rendered > 0
        before = table.cells_rendered
        rows = {**rows, "3": (rows["3"][0], Text("peer-3x"), rows["3"][2])}     # as wide as peer-99
        sync_table(table, rows)
        await pilot.pause()
        assert table.cells_rendered - before == 1
        assert "peer-3x" in str(table.get_row("3")[1])


async def test_a_column_widens_when_a_value_outgrows_it() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 20)) as pilot:
        table = app.query_one(ConsoleTable)
        rows = table_rows(5)
        sync_table(table, rows)
        await pilot.pause()
        peer = list(table.columns.values())[1]
        assert peer.content_width == len("peer-4")
        rows = {**rows, "3": (rows["3"][0], Text("peer-3 now much longer"), rows["3"][2])}
        sync_table(table, rows)
        await pilot.pause()
        assert peer.content_width == len("peer-3 now much longer")
        assert "peer-3 now much longer" in "\n".join(strip.text for strip in table.render_lines(table.region))
        # A value getting shorter again leaves the column as wide: no jumping columns.
        sync_table(table, table_rows(5))
        await pilot.pause()
        assert peer.content_width == len("peer-3 now much longer")


async def test_focus_round_trip_reuses_rendered_cells() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 20)) as pilot:
        table = app.query_one(ConsoleTable)
        sync_table(table, table_rows(50))
        table.focus()
        await pilot.pause()
        app.set_focus(None)
        await pilot.pause()
        before = table.cells_rendered
        table.focus()                 # as when its tab is shown again
        await pilot.pause()
        assert table.cells_rendered == before


async def test_j_and_k_move_the_cursor() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 20)) as pilot:
        table = app.query_one(ConsoleTable)
        sync_table(table, table_rows(10))
        table.focus()
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1


class KeysApp(App[None]):
    BINDINGS = [Binding("x", "mark('x')", "Mark"), Binding("y", "mark('y')", "Hidden", show=False)]

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[str] = []

    def compose(self) -> ComposeResult:
        yield KeyBar()

    def action_mark(self, what: str) -> None:
        self.marks.append(what)


async def test_key_bar_lists_shown_keys_and_a_click_presses_one() -> None:
    app = KeysApp()
    async with app.run_test(size=(60, 5)) as pilot:
        bar = app.query_one(KeyBar)
        await pilot.pause()
        line = str(bar.render())
        assert "x Mark" in line and "Hidden" not in line and "palette" in line
        assert not bar.children
        await pilot.click(KeyBar, offset=(2, 0))       # on " x Mark "
        assert app.marks == ["x"]


async def test_key_bar_follows_the_tab_without_mounting_widgets(console: Console) -> None:
    app, pilot = console
    bar = app.query_one(KeyBar)
    await pilot.press("3")
    await wait_for(pilot, lambda: "Password" in str(bar.render()))
    await pilot.press("5")
    await wait_for(pilot, lambda: "Protocol" in str(bar.render()))
    assert "Password" not in str(bar.render())
    assert not bar.children


async def test_log_pane_shown_again_appends_what_came_meanwhile(console: Console) -> None:
    app, pilot = console
    log_pane = app.pane("log")
    await pilot.press("5")
    runtime = app.server
    assert runtime is not None
    runtime.bus.publish(LogRecord("INFO", "rmail.smtp", "first line", time.time()))
    await wait_for(pilot, lambda: any("first line" in r.message for r in log_pane.records))  # type: ignore[union-attr]
    await pilot.press("1")
    await wait_for(pilot, lambda: not log_pane.showing)  # type: ignore[union-attr]
    for i in range(3):
        runtime.bus.publish(LogRecord("INFO", "rmail.smtp", f"while hidden {i}", time.time()))
    await wait_for(pilot, lambda: log_pane._missed >= 3)  # type: ignore[union-attr]  # noqa: SLF001
    rich_log = log_pane.query_one("RichLog")
    before = len(rich_log.lines)  # type: ignore[attr-defined]
    assert before < REDRAW
    await pilot.press("5")
    await wait_for(pilot, lambda: log_pane._missed == 0)  # type: ignore[union-attr]  # noqa: SLF001
    await pilot.pause()
    text = "\n".join(strip.text for strip in rich_log.lines)  # type: ignore[attr-defined]
    assert text.count("first line") == 1
    assert all(f"while hidden {i}" in text for i in range(3))
