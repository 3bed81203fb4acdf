""""Another rmail server is already running": attach to it (the default), or quit."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class AttachScreen(ModalScreen[str | None]):
    """Dismissed with "attach", "quit", or None (escape: keep the console open without a server)."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("a", "choose('attach')", "Attach"),
                Binding("q", "choose('quit')", "Quit")]

    def __init__(self, data_dir: Path) -> None:
        super().__init__(classes="error-screen")
        self.data_dir = data_dir

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Another rmail server is already running", classes="title")
            yield Static(f"A server already runs on {self.data_dir}. The console can attach to it and show "
                         "it as if it ran here: the same panes and actions.", id="message", markup=False)
            yield Static("Leaving the console (q) leaves that server running.", classes="hint")
            with Horizontal(classes="buttons"):
                yield Button("Attach", variant="primary", id="attach", compact=True)
                yield Button("Quit", id="quit", compact=True)

    def on_mount(self) -> None:
        # Enter attaches: it starts nothing and stops nothing.
        self.query_one("#attach", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)

    def action_close(self) -> None:
        self.dismiss(None)
