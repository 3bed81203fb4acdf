"""The key bar: the footer line listing the keys of the focused pane, as one widget.

Textual's ``Footer`` recomposes (removes and mounts a widget per key, restyles them and lays
out the screen) on every focus change, which made a tab switch cost several layouts under
load. This bar renders one line of text, redraws only when the shown keys change and never
asks for a layout (it is docked with a fixed height). A click on a key presses it, like
Footer's keys.
"""

from __future__ import annotations

from typing import NamedTuple

from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widget import Widget


class Shown(NamedTuple):
    key: str
    display: str
    description: str
    enabled: bool


class KeyBar(Widget, can_focus=False):
    """Shows the active bindings with ``show=True`` (first key per action) and, on the right,
    the command palette key. Styled in rmail.tcss through its component classes."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES = {"keybar--key", "keybar--description", "keybar--disabled", "keybar--palette"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.keys: tuple[Shown, ...] = ()
        self.palette: Shown | None = None
        #: (first cell, end cell, key) of each key as last rendered, for clicks.
        self._spans: list[tuple[int, int, str]] = []

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self.bindings_changed)
        self.bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def bindings_changed(self, screen: Screen) -> None:
        if screen is not self.screen:
            return
        app = self.app
        active = screen.active_bindings
        per_action: dict[str, Shown] = {}
        for _node, binding, enabled, _tooltip in active.values():
            if binding.show and binding.action not in per_action:
                per_action[binding.action] = Shown(binding.key, app.get_key_display(binding),
                                                   binding.description, enabled)
        palette = None
        if app.ENABLE_COMMAND_PALETTE and (found := active.get(app.COMMAND_PALETTE_BINDING)) is not None:
            palette = Shown(found.binding.key, app.get_key_display(found.binding), found.binding.description,
                            found.enabled)
        keys = tuple(per_action.values())
        # Focus moves often (every tab switch); most moves leave the keys as they were.
        if keys != self.keys or palette != self.palette:
            self.keys, self.palette = keys, palette
            self.refresh()

    def render(self) -> Text:
        key_style = self.get_component_rich_style("keybar--key")
        description_style = self.get_component_rich_style("keybar--description")
        disabled_style = self.get_component_rich_style("keybar--disabled")
        text = Text(no_wrap=True, overflow="crop", end="")
        spans: list[tuple[int, int, str]] = []
        for shown in self.keys:
            start, first = text.cell_len, len(text)
            text.append(f" {shown.display} ", key_style)
            if shown.description:
                text.append(f"{shown.description} ", description_style)
            if not shown.enabled:
                text.stylize(disabled_style, first, len(text))
            spans.append((start, text.cell_len, shown.key))
        if self.palette is not None:
            right = Text.assemble(("▏", self.get_component_rich_style("keybar--palette")),
                                  (f"{self.palette.display} ", key_style),
                                  (f"{self.palette.description} ", description_style))
            gap = self.size.width - text.cell_len - right.cell_len
            if gap >= 0:
                text.append(" " * gap)
                spans.append((text.cell_len, text.cell_len + right.cell_len, self.palette.key))
                text.append_text(right)
        self._spans = spans
        return text

    def on_mouse_down(self, event: events.MouseDown) -> None:
        for start, end, key in self._spans:
            if start <= event.x < end:
                enabled = next((s.enabled for s in (*self.keys, self.palette) if s is not None and s.key == key),
                               True)
                if enabled:
                    self.app.simulate_key(key)
                else:
                    self.app.bell()
                return
