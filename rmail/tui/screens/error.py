"""A server error shown in the app (never a traceback over the screen)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ErrorScreen(ModalScreen[bool]):
    """Dismissed with True when the user chooses to quit."""

    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, title: str, message: str, hint: str = "") -> None:
        super().__init__(classes="error-screen")
        self.heading = title
        self.message = message
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.heading, classes="title", markup=False)
            yield Static(self.message, id="message", markup=False)
            if self.hint:
                yield Static(self.hint, classes="hint", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Quit", variant="error", id="quit", compact=True)
                yield Button("Keep the console open", id="close", compact=True)

    def on_mount(self) -> None:
        self.query_one("#quit", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "quit")

    def action_close(self) -> None:
        self.dismiss(False)
