"""What every table pane shares: a DataTable that reloads from the runtime when marked dirty.

The app drains the event bus a few times a second and only marks panes dirty; a pane reloads
at most once per ``MIN_INTERVAL`` from the source of truth (registry or store), so a burst of
thousands of events costs one reload, and the server never waits for the UI.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar, Mapping

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from rmail.server.core.errors import RmailError
from rmail.server.core.events import Event, ExternalChange

from ..tables import Row, selected_key, sync_table
from .table import ConsoleTable

if TYPE_CHECKING:
    from ..source import ConsoleRuntime


class Pane(Vertical):
    """A tab's content. Subclasses set COLUMNS and WATCH and implement ``load``."""

    COLUMNS: ClassVar[tuple[str, ...]] = ()
    #: Event types that make this pane reload (ExternalChange always does).
    WATCH: ClassVar[tuple[type[Event], ...]] = ()
    #: Least seconds between two reloads; store-backed panes use more.
    MIN_INTERVAL: ClassVar[float] = 0.0
    #: Rows are shown in the exact order ``load`` returns (alias rules).
    ORDERED: ClassVar[bool] = False
    EMPTY: ClassVar[str] = ""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="pane")
        self._dirty = True
        self._last = 0.0
        self.loads = 0            #: completed reloads (tests wait on this)

    def compose(self) -> ComposeResult:
        table = ConsoleTable(cursor_type="row", zebra_stripes=True)
        table.add_columns(*self.COLUMNS)
        yield table
        yield Static(self.EMPTY, classes="empty")

    @property
    def table(self) -> DataTable:
        return self.query_one(DataTable)

    def focus_main(self) -> None:
        self.table.focus()

    @property
    def runtime(self) -> ConsoleRuntime | None:
        return getattr(self.app, "runtime", None)

    @property
    def selected(self) -> str | None:
        return selected_key(self.table)

    def wants(self, event: Event) -> bool:
        return isinstance(event, self.WATCH) or isinstance(event, ExternalChange)

    def mark_dirty(self) -> None:
        self._dirty = True

    def tick(self, now: float | None = None) -> None:
        """Reload when dirty and the rate limit allows (called by the app's pump)."""
        now = time.monotonic() if now is None else now
        runtime = self.runtime
        # Cut off from an attached server, a reload could only fail; the reconnection resyncs.
        if self._dirty and runtime is not None and runtime.connected and now - self._last >= self.MIN_INTERVAL:
            self._dirty = False
            self._last = now
            self.reload()

    @work(exclusive=True, group="reload", exit_on_error=False)
    async def reload(self) -> None:
        runtime = self.runtime
        if runtime is None:
            return
        try:
            rows = await self.load(runtime)
        except RmailError as exc:
            self.notify(str(exc), severity="error")
            return
        self.show(rows)

    def show(self, rows: Mapping[str, Row]) -> None:
        sync_table(self.table, rows, ordered=self.ORDERED)
        self.set_class(not rows, "-empty")
        self.loads += 1

    async def load(self, runtime: ConsoleRuntime) -> Mapping[str, Row]:
        """The pane's rows by key, from the runtime. Every pane class defines it."""
        raise TypeError(f"{type(self).__name__} defines no load()")

    def require_selection(self, what: str) -> str | None:
        key = self.selected
        if key is None:
            self.notify(f"no {what} selected", severity="warning")
        return key
