"""Progress on the terminal for long admin commands (import, export, backup, restore, store
copy): a bar with a count and the time left when the amount of work is known, else one line of
text, drawn with rich on stderr and rewritten in place. Only when stderr is a terminal: a log
file or a pipe gets the command's summary line alone."""

from __future__ import annotations

import sys
import time
from typing import IO

from rich.console import Console, RenderableType
from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bars, ProgressColumn, Task, TaskID, TextColumn,
                           TimeRemainingColumn)
from rich.text import Text


class _WhenKnown(ProgressColumn):
    """A column shown only once the amount of work is known (else the line is text alone)."""

    def __init__(self, inner: ProgressColumn) -> None:
        super().__init__()
        self.inner = inner

    def render(self, task: Task) -> RenderableType:
        return self.inner.render(task) if task.total is not None else Text("")


class Progress:
    """Callable as core.progress.Progress; ``clear`` before printing the summary."""

    def __init__(self, stream: IO[str] | None = None, interval: float = 0.2) -> None:
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self._last = 0.0
        self._bars: Bars | None = None
        self._task: TaskID | None = None

    def __call__(self, text: str, done: int | None = None, total: int | None = None) -> None:
        self.update(text, done, total)

    def update(self, text: str, done: int | None = None, total: int | None = None) -> None:
        if not self.live:
            return
        now = time.monotonic()
        if now - self._last < self.interval and (total is None or done != total):
            return
        self._last = now
        if self._bars is None:
            self._bars = Bars(TextColumn("{task.description}"), _WhenKnown(BarColumn()),
                              _WhenKnown(MofNCompleteColumn()), _WhenKnown(TimeRemainingColumn()),
                              console=Console(file=self.stream, force_terminal=True),
                              transient=True, auto_refresh=False)
            self._bars.start()
            self._task = self._bars.add_task(text, total=None)
        assert self._task is not None
        self._bars.update(self._task, description=text, completed=done or 0, total=total)
        self._bars.refresh()

    def clear(self) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None
            self._task = None
