"""Behaviour shared by the client's screens."""

from __future__ import annotations

from textual.screen import Screen
from textual.worker import Worker, WorkerState


class ClientScreen(Screen[None]):
    """Worker state messages do not bubble, so each screen hands failures to the app."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.app.report_worker_error(event.worker)  # type: ignore[attr-defined]
