"""Real Debian clients (swaks, mbsync, curl, wrk) for interoperability tests.

Locally a missing client skips its test with a reason; under CI (CI=true) .ci/run installs
them first, so a missing one is a failure.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_client(name: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is not installed, but CI must run this test (.ci/run installs it)")
    pytest.skip(f"{name} is not installed (apt-get install {'isync' if name == 'mbsync' else name})")
