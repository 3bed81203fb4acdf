"""Lines a test hands to the end of the pytest run (conftest's terminal summary), e.g. the
imaptest scripted suite's three summary lines, so CI's log shows them without -s."""

from __future__ import annotations

import pytest

#: The imaptest scripted suite's failed groups and summary lines.
IMAPTEST_SUMMARY = pytest.StashKey[str]()
