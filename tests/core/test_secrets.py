"""Directory secrets on every backend: get-or-create, and drop_secret (IMAP RESETKEY)."""

from __future__ import annotations

import secrets

from rmail.server.core.storage import Backend


async def test_secret_created_once_then_dropped(backend: Backend) -> None:
    directory = backend.directory
    first = await directory.secret("urlauth-1-2-3", lambda: secrets.token_bytes(32))
    assert await directory.secret("urlauth-1-2-3", lambda: b"not this") == first
    other = await directory.secret("urlauth-1-2-4", lambda: b"another mailbox")
    await directory.drop_secret("urlauth-1-2-3")
    await directory.drop_secret("urlauth-1-2-3")        # none left: nothing happens
    await directory.drop_secret("urlauth-9-9-9")
    assert await directory.secret("urlauth-1-2-3", lambda: b"made anew") == b"made anew"
    assert await directory.secret("urlauth-1-2-4", lambda: b"x") == other
