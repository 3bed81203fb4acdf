"""How long-running admin work (import, export, backup, restore, store copy) reports progress:
a line of text, and when the amount of work is known, how much of it is done."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Progress", "no_progress"]


class Progress(Protocol):
    def __call__(self, text: str, done: int | None = None, total: int | None = None) -> None:
        """``text`` says what is happening; ``done`` of ``total`` units (messages, files,
        bytes — the caller's choice, the same for one run) when known."""
        ...


def no_progress(text: str, done: int | None = None, total: int | None = None) -> None:
    """Reports nothing (no terminal, tests)."""
