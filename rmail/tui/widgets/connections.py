"""Connections pane: every open client connection, live; disconnect the selected one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.binding import Binding

from rmail.server.core.errors import RmailError
from rmail.server.core.events import ConnectionClosed, ConnectionOpened, ConnectionUpdated

from ..format import cell, clock_time, size
from ..tables import Row
from .pane import Pane

if TYPE_CHECKING:
    from ..source import ConsoleRuntime


class ConnectionsPane(Pane):
    COLUMNS = ("ID", "Protocol", "Peer", "User", "TLS", "State", "Since", "In", "Out")
    WATCH = (ConnectionOpened, ConnectionUpdated, ConnectionClosed)
    # Byte counters change constantly under load (every IDLE session gets EXISTS per delivery);
    # once a second reads live without re-rendering a large table on every tick.
    MIN_INTERVAL = 1.0
    EMPTY = "No client is connected."
    BINDINGS = [Binding("x", "disconnect", "Disconnect")]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        # conn id -> (what the row was built from, the row): most of 500 idle sessions do not
        # change between two reloads, so their cells are not rebuilt or compared again.
        self._rows: dict[int, tuple[tuple, Row]] = {}

    async def load(self, runtime: ConsoleRuntime) -> dict[str, Row]:
        # One read of the connection registry (in memory), however many are open.
        rows: dict[str, Row] = {}
        fresh: dict[int, tuple[tuple, Row]] = {}
        for c in await runtime.connections():
            signature = (c.user, c.tls, c.state, c.bytes_in, c.bytes_out)
            cached = self._rows.get(c.id)
            if cached is None or cached[0] != signature:
                cached = (signature, (cell(c.id), cell(c.protocol), cell(c.peer), cell(c.user or "-"),
                                      cell("yes" if c.tls else "no", "green" if c.tls else ""),
                                      cell(c.state), cell(clock_time(c.since)), cell(size(c.bytes_in)),
                                      cell(size(c.bytes_out))))
            fresh[c.id] = cached
            rows[str(c.id)] = cached[1]
        self._rows = fresh
        return rows

    @work(group="action", exit_on_error=False)
    async def action_disconnect(self) -> None:
        key = self.require_selection("connection")
        runtime = self.runtime
        if key is None or runtime is None:
            return
        try:
            closing = await runtime.disconnect(int(key))
        except RmailError as exc:
            self.notify(str(exc), severity="error")
            return
        if closing:
            self.notify(f"connection {key}: closing")
        else:
            self.notify(f"connection {key} is gone or cannot be closed", severity="warning")
        self.mark_dirty()
