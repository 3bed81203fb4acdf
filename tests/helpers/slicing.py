"""Counting how often commands give the event loop back (core/slicing.py), for the tests that
check a loop over a whole mailbox yields per message."""

from __future__ import annotations

import pytest

from rmail.server.core.slicing import Slicer


class PauseCounter:
    """Every slice is due at once and each pause is counted (`count`): a loop that never
    yields would count nothing."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        pause = Slicer.pause

        async def counted(slicer: Slicer) -> None:
            self.count += 1
            await pause(slicer)
        monkeypatch.setattr(Slicer, "due", lambda slicer: True)
        monkeypatch.setattr(Slicer, "pause", counted)
