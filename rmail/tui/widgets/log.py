"""Log pane: the server's log as it happens, filterable by level and protocol.

Lines come from ``LogRecord`` events (``ServerRuntime.forward_logs`` puts the server's log on
its bus, for the embedded console and for each attached one); they are written with markup
off, so a logged peer name or address is shown as data.
"""

from __future__ import annotations

import collections
import itertools
import logging
from typing import ClassVar, Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import RichLog, Static

from rmail.server.core.events import LogRecord

from ..format import clock_time, protocol_of

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
PROTOCOLS = ("all", "smtp", "imap", "api", "core")
LEVEL_STYLES = {"DEBUG": "dim", "INFO": "", "WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red"}
#: Lines kept for re-filtering; the RichLog keeps as many.
KEEP = 2000
#: Most lines written per batch: under a flood, older lines of the batch are summarised.
MAX_PER_BATCH = 200
#: Lines re-drawn when the pane is shown again or the filter changes.
REDRAW = 500


class LogPane(Vertical):
    BINDINGS: ClassVar = [
        Binding("v", "cycle_level", "Level"),
        Binding("p", "cycle_protocol", "Protocol"),
        Binding("c", "clear", "Clear"),
    ]

    level: reactive[str] = reactive("INFO")
    protocol: reactive[str] = reactive("all")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="pane")
        self.records: collections.deque[LogRecord] = collections.deque(maxlen=KEEP)
        # Not ``visible``: that is DOMNode's CSS visibility, and setting it forces a layout.
        self.showing = False
        #: Records added while hidden: shown again, a few are appended, many mean a redraw.
        self._missed = 0

    def compose(self) -> ComposeResult:
        yield Static("", id="log-filter")
        yield RichLog(markup=False, highlight=False, max_lines=KEEP, wrap=False, auto_scroll=True)

    def on_mount(self) -> None:
        self._show_filter()

    def focus_main(self) -> None:
        self.query_one(RichLog).focus()

    def shown(self, visible: bool) -> None:
        """The app tells the pane when its tab is shown or hidden: hidden, it only keeps records
        (rendering lines nobody sees would cost the server time under load)."""
        self.showing = visible
        if not visible or not self._missed:
            return
        if self._missed > MAX_PER_BATCH:
            self._refilter()
            return
        # Appending what came in meanwhile renders a handful of lines, not REDRAW of them.
        missed = list(itertools.islice(reversed(self.records), self._missed))[::-1]
        self._missed = 0
        self._write([r for r in missed if self.passes(r)])

    def passes(self, record: LogRecord) -> bool:
        level = logging.getLevelName(record.level)
        minimum = logging.getLevelName(self.level)
        if isinstance(level, int) and level < minimum:
            return False
        return self.protocol == "all" or protocol_of(record.logger) == self.protocol

    @staticmethod
    def line(record: LogRecord) -> Text:
        text = Text(no_wrap=True)
        text.append(clock_time(record.created) + " ", style="dim")
        text.append(f"{record.level:<7} ", style=LEVEL_STYLES.get(record.level, ""))
        text.append(f"{protocol_of(record.logger):<4} ", style="cyan")
        text.append(record.message.replace("\r", "").replace("\n", " ⏎ "))
        return text

    def add(self, records: Iterable[LogRecord]) -> None:
        """Append a batch (called by the app's pump, a few times a second)."""
        fresh = list(records)
        self.records.extend(fresh)
        if self.showing:
            self._write([r for r in fresh if self.passes(r)])
        else:
            self._missed += len(fresh)

    def _write(self, records: list[LogRecord]) -> None:
        log = self.query_one(RichLog)
        if len(records) > MAX_PER_BATCH:
            skipped = len(records) - MAX_PER_BATCH
            log.write(Text(f"… {skipped} lines not shown (press v or p to filter)", style="dim italic"))
            records = records[-MAX_PER_BATCH:]
        for record in records:
            log.write(self.line(record))

    def _refilter(self) -> None:
        self._missed = 0
        self.query_one(RichLog).clear()
        self._write([r for r in self.records if self.passes(r)][-REDRAW:])
        self._show_filter()

    def _show_filter(self) -> None:
        self.query_one("#log-filter", Static).update(
            Text.assemble(("level ≥ ", "dim"), (self.level, "bold"), ("  protocol: ", "dim"),
                          (self.protocol, "bold"), ("   v: level  p: protocol  c: clear", "dim")))

    def watch_level(self) -> None:
        if self.is_mounted:
            self._refilter()

    def watch_protocol(self) -> None:
        if self.is_mounted:
            self._refilter()

    def action_cycle_level(self) -> None:
        self.level = LEVELS[(LEVELS.index(self.level) + 1) % len(LEVELS)]

    def action_cycle_protocol(self) -> None:
        self.protocol = PROTOCOLS[(PROTOCOLS.index(self.protocol) + 1) % len(PROTOCOLS)]

    def action_clear(self) -> None:
        self.records.clear()
        self._missed = 0
        self.query_one(RichLog).clear()
