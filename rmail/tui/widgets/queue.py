"""Queue pane: outbound mail waiting for delivery; retry now, delete, view.

Entries are read from the store (the queue table is the truth); retry and delete go through
the outbound queue service, which owns the delivery attempts.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from textual import work
from textual.binding import Binding

from rmail.server.core.errors import NotFound, RmailError
from rmail.server.core.events import Event, MessageReceived, QueueChanged
from rmail.server.core.model import QueueEntry

from ..format import cell, relative, size
from ..screens.confirm import ConfirmScreen
from ..screens.queue_entry import QueueEntryScreen
from ..tables import Row
from .pane import Pane

if TYPE_CHECKING:
    from rmail.server.runtime import ServerRuntime

#: Rows shown at most; a queue this long needs the CLI, not a scrolling table.
MAX_ROWS = 1000


async def queue_entries(runtime: ServerRuntime, entry_id: int | None = None) -> list[QueueEntry]:
    """Entries by next attempt (the order they will be tried), or the one with ``entry_id``."""
    if entry_id is not None:
        try:
            return [await runtime.backend.queue.get(entry_id)]
        except NotFound:
            return []
    return await runtime.backend.queue.list(by_next_attempt=True, limit=MAX_ROWS)


def outbound_queue(runtime: ServerRuntime) -> Any | None:
    """The running outbound queue service (set by the SMTP service), if any."""
    return getattr(runtime.delivery, "outbound", None)


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

    async def load(self, runtime: ServerRuntime) -> dict[str, Row]:
        now = time.time()
        return {str(e.id): (cell(e.id), cell(e.sender or "<>"), cell(e.recipient), cell(size(e.size)),
                            cell(e.attempts), cell(relative(e.next_attempt.timestamp(), now)),
                            cell(e.last_error or "-", "red" if e.last_error else ""))
                for e in await queue_entries(runtime)}

    def _service(self, method: str) -> Any | None:
        runtime = self.runtime
        service = outbound_queue(runtime) if runtime is not None else None
        if service is None or not callable(getattr(service, method, None)):
            self.notify("the outbound queue is not running (the SMTP service has not started)",
                        severity="warning")
            return None
        return getattr(service, method)

    @work(group="action", exit_on_error=False)
    async def action_retry(self) -> None:
        key = self.require_selection("queue entry")
        retry = self._service("retry") if key is not None else None
        if retry is None:
            return
        try:
            await retry(int(key))
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
                                           " and no bounce is sent."), answered)

    @work(group="action", exit_on_error=False)
    async def _delete(self, entry_id: int) -> None:
        delete = self._service("delete")
        if delete is None:
            return
        try:
            await delete(entry_id)
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
        entries = await queue_entries(self.runtime, int(key))
        if not entries:
            self.notify(f"queue entry {key} is gone", severity="warning")
            self.mark_dirty()
            return
        self.app.push_screen(QueueEntryScreen(self.runtime, entries[0]))
