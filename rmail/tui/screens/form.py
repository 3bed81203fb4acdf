"""A modal form that runs its action itself and shows a failure inline, so a typo costs one
correction instead of retyping the whole form."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from rmail.server.core.errors import RmailError

if TYPE_CHECKING:
    from ..source import ConsoleRuntime


class FormScreen(ModalScreen[str | None]):
    """Subclasses yield their fields from ``fields()`` and do the work in ``submit()``.

    ``submit`` returns the message to show once done (the screen is dismissed with it) or raises
    ``RmailError`` (shown inline, the form stays open). Cancel dismisses with None.
    """

    TITLE: ClassVar[str] = ""
    SUBMIT: ClassVar[str] = "OK"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, runtime: ConsoleRuntime) -> None:
        super().__init__(classes="form")
        self.runtime = runtime
        self._busy = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="form"):
            yield Label(self.heading(), classes="title", markup=False)
            with Grid(classes="fields"):
                yield from self.fields()
            yield from self.extras()
            yield Static("", classes="error")
            with Horizontal(classes="buttons"):
                yield Button(self.SUBMIT, variant="primary", id="submit", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def heading(self) -> str:
        return self.TITLE

    def fields(self) -> ComposeResult:
        """Label/Input pairs laid out in two columns."""
        yield from ()

    def extras(self) -> ComposeResult:
        """Widgets below the fields (checkboxes, results)."""
        yield from ()

    async def submit(self) -> str:
        """Do the form's action; return the message to show. Every form class defines it."""
        raise TypeError(f"{type(self).__name__} defines no submit()")

    def done(self, result: str) -> None:
        """After a successful submit: close with the result (the wizard shows a next step)."""
        self.dismiss(result)

    def value(self, input_id: str) -> str:
        return self.query_one(f"#{input_id}", Input).value

    def checked(self, checkbox_id: str) -> bool:
        return self.query_one(f"#{checkbox_id}", Checkbox).value

    def show_error(self, text: str) -> None:
        self.query_one(".error", Static).update(text)
        self.set_class(bool(text), "-failed")

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#submit")
    @on(Input.Submitted)
    def _go(self) -> None:
        self.run_submit()

    @work(group="submit", exit_on_error=False)
    async def run_submit(self) -> None:
        # A second Enter while the first submit runs is ignored (not queued, not cancelling it:
        # a cancelled add_user may still commit). The button keeps focus, so no disabling.
        if self._busy:
            return
        self._busy = True
        self.show_error("")
        try:
            result = await self.submit()
        except RmailError as exc:
            self.show_error(str(exc))
        else:
            self.done(result)
        finally:
            self._busy = False


def field(label: str, input_id: str, *, password: bool = False, value: str = "",
          placeholder: str = "") -> ComposeResult:
    """One Label + compact Input row of a form."""
    yield Label(label)
    yield Input(value=value, id=input_id, password=password, placeholder=placeholder, compact=True,
                max_length=256)
