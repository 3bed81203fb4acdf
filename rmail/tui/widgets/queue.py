"""Queue pane: outbound mail waiting for delivery; retry now, delete, view.

Entries are read from the store (the queue table is the truth); retry and delete go through
the outbound queue service, which owns the delivery attempts (AdminService).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from textual import work
from textual.binding import Binding

from rmail.server.core.errors import RmailError
from rmail.server.core.events import Event, MessageReceived, QueueChanged

from ..format import cell, relative, size
from ..screens.confirm import ConfirmScreen
from ..screens.queue_entry import QueueEntryScreen
from ..tables import Row
from .pane import Pane

if TYPE_CHECKING:
    from ..source import ConsoleRuntime


class QueuePane(Pane):
    COLUMNS = ("ID", "Sender", "Recipient", "Size", "Tries", "Next try", "Last error")
    WATCH = (QueueChanged, MessageReceived)
    MIN_INTERVAL = 1.0
    EMPTY = "The outbound queue is empty."
    BINDINGS = [
        Binding("r", "retry", "Retry now"),
        Binding("delete,d", "delete", "Delete"),
        Binding("enter,v", "view", "View"),
    ]

    def wants(self, event: Event) -> bool:
        if isinstance(event, MessageReceived):
            return event.remote_recipients > 0
        return super().wants(event)

    async def load(self, runtime: ConsoleRuntime) -> dict[str, Row]:
        now = time.time()
        return {str(e.id): (cell(e.id), cell(e.sender or "<>"), cell(e.recipient), cell(size(e.size)),
                            cell(e.attempts), cell(relative(e.next_attempt, now)),
                            cell(e.last_error or "-", "red" if e.last_error else ""))
                for e in await runtime.queue()}

    @work(group="action", exit_on_error=False)
    async def action_retry(self) -> None:
        key = self.require_selection("queue entry")
        if key is None or self.runtime is None:
            return
        try:
            await self.runtime.queue_retry(int(key))
        except RmailError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"queue entry {key}: retrying now")
        self.mark_dirty()

    def action_delete(self) -> None:
        key = self.require_selection("queue entry")
        if key is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(int(key))
        self.app.push_screen(ConfirmScreen(f"Delete queue entry {key}?",
                                           "The message will not be delivered to this recipient,"
                                           " and no bounce is sent.", yes="Delete", no="Keep"), answered)

    @work(group="action", exit_on_error=False)
    async def _delete(self, entry_id: int) -> None:
        if self.runtime is None:
            return
        try:
            await self.runtime.queue_delete(entry_id)
        except RmailError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"queue entry {entry_id} deleted")
        self.mark_dirty()

    @work(group="action", exit_on_error=False)
    async def action_view(self) -> None:
        key = self.require_selection("queue entry")
        if key is None or self.runtime is None:
            return
        try:
            entry = await self.runtime.queue_entry(int(key))
        except RmailError as exc:
            self.notify(str(exc), severity="error")
            return
        if entry is None:
            self.notify(f"queue entry {key} is gone", severity="warning")
            self.mark_dirty()
            return
        self.app.push_screen(QueueEntryScreen(self.runtime, entry))
