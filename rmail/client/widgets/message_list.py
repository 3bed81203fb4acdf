"""The message list: a DataTable that grows page by page as the cursor nears its end."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from textual import events
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from rmail.client.model import MessageSummary
from rmail.client.render import summary_cells
from rmail.client.threads import ThreadRow, thread

#: Widths of the columns that do not stretch (flags, date, size).
FIXED_WIDTHS = {"flags": 3, "date": 10, "size": 8}
#: Ask for the next page when the cursor is this close to the last loaded row.
PREFETCH_MARGIN = 20


class MessageList(DataTable[object]):
    """Rows keyed by UID; holds only loaded summaries (the rest arrive on demand)."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    class NeedMore(Message):
        """The cursor is near the end of the loaded rows."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.summaries: dict[int, MessageSummary] = {}
        self.order: list[int] = []  # loaded UIDs in display order (newest first)
        self.threaded = False
        self.more_available = False
        self.now: datetime | None = None  # fixed clock for snapshot tests

    def on_mount(self) -> None:
        self.add_column("", key="flags", width=FIXED_WIDTHS["flags"])
        self.add_column("Date", key="date", width=FIXED_WIDTHS["date"])
        self.add_column("From", key="from", width=24)
        self.add_column("Subject", key="subject", width=40)
        self.add_column("Size", key="size", width=FIXED_WIDTHS["size"])

    def on_resize(self, event: events.Resize) -> None:
        """Give From a third and Subject the rest of the width, so nothing hides off-screen."""
        padding = 2 * self.cell_padding * len(self.columns) + 2  # + vertical scrollbar
        free = max(24, event.size.width - sum(FIXED_WIDTHS.values()) - padding)
        sender = max(10, min(28, free // 3))
        for key, width in (("from", sender), ("subject", free - sender)):
            column = self.columns[ColumnKey(key)]
            column.width, column.auto_width = width, False
        # DataTable has no public call to re-measure after a column width change.
        self._require_update_dimensions = True
        self.refresh()

    # -- content -------------------------------------------------------------------------
    def show(self, summaries: Sequence[MessageSummary], *, more: bool) -> None:
        """Replace the content; keeps the cursor on the same UID when it is still there."""
        keep = self.current_uid()
        self.summaries = {s.uid: s for s in summaries}
        self.order = [s.uid for s in summaries]
        self.more_available = more
        self._rebuild(keep)

    def extend(self, summaries: Sequence[MessageSummary], *, more: bool) -> None:
        """Append an older page."""
        self.more_available = more
        fresh = [s for s in summaries if s.uid not in self.summaries]
        for s in fresh:
            self.summaries[s.uid] = s
            self.order.append(s.uid)
        if self.threaded:
            self._rebuild(self.current_uid())
        else:
            for s in fresh:
                self.add_row(*summary_cells(s, 0, self.now), key=str(s.uid))

    def prepend(self, summaries: Sequence[MessageSummary]) -> None:
        """New mail arrived: put it on top."""
        fresh = [s for s in summaries if s.uid not in self.summaries]
        if not fresh:
            return
        for s in fresh:
            self.summaries[s.uid] = s
        self.order = sorted((s.uid for s in fresh), reverse=True) + self.order
        self._rebuild(self.current_uid())

    def update(self, summary: MessageSummary) -> None:
        """Refresh one row (flags changed)."""
        if summary.uid not in self.summaries:
            return
        self.summaries[summary.uid] = summary
        if self.threaded:
            self._rebuild(self.current_uid())
            return
        for column, cell in zip(("flags", "date", "from", "subject", "size"), summary_cells(summary, 0, self.now)):
            self.update_cell(str(summary.uid), column, cell)

    def remove_uids(self, uids: Sequence[int]) -> None:
        for uid in uids:
            if uid in self.summaries:
                del self.summaries[uid]
                self.order.remove(uid)
                self.remove_row(str(uid))

    def toggle_threads(self) -> None:
        self.threaded = not self.threaded
        self._rebuild(self.current_uid())

    def _rebuild(self, keep: int | None) -> None:
        self.clear()
        loaded = [self.summaries[u] for u in self.order]
        rows = thread(loaded) if self.threaded else [ThreadRow(s, 0) for s in loaded]
        for row in rows:
            self.add_row(*summary_cells(row.summary, row.depth, self.now), key=str(row.summary.uid))
        if keep is not None and keep in self.summaries:
            self.move_cursor(row=self.get_row_index(str(keep)), animate=False)

    # -- queries -------------------------------------------------------------------------
    def current_uid(self) -> int | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001 - cursor outside the table after a clear
            return None
        return int(key.value) if key.value is not None else None

    def current(self) -> MessageSummary | None:
        uid = self.current_uid()
        return self.summaries.get(uid) if uid is not None else None

    def neighbour(self, uid: int, step: int) -> int | None:
        """The UID ``step`` rows away from ``uid`` in display order, or None at an end."""
        try:
            index = self.get_row_index(str(uid)) + step
        except Exception:  # noqa: BLE001 - row gone
            return None
        if 0 <= index < self.row_count:
            key = self.coordinate_to_cell_key(Coordinate(index, 0)).row_key
            return int(key.value) if key.value is not None else None
        return None

    def select_uid(self, uid: int) -> None:
        try:
            self.move_cursor(row=self.get_row_index(str(uid)), animate=False)
        except Exception:  # noqa: BLE001 - row gone
            pass

    def watch_cursor_coordinate(self, old: Coordinate, new: Coordinate) -> None:
        super().watch_cursor_coordinate(old, new)
        if self.more_available and new.row >= self.row_count - PREFETCH_MARGIN:
            self.post_message(self.NeedMore())
