"""``run.py queue list|retry ID|delete ID`` on a store with queued mail."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from rmail.cli import main
from rmail.server.core.queue import enqueue
from tests.helpers.stores import open_sqlite


@pytest.fixture
def config(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    path = tmp_path / "rmail.toml"
    path.write_text(f'data_dir = "{data}"\nbcrypt_rounds = 4\nhostname = "mail.example.com"\n')

    async def seed() -> None:
        data.mkdir()
        store_backend = await open_sqlite(data)
        store = store_backend.mail
        try:
            await enqueue(store, "alice@example.com", ["dave@remote.example.org", "erin@remote.example.org"],
                                  b"Subject: q\r\n\r\nx\r\n", time.time() + 600)
        finally:
            await store_backend.close()
    asyncio.run(seed())
    return path


def _entries(data: Path):
    async def go():
        backend = await open_sqlite(data)
        try:
            return await backend.queue.list()
        finally:
            await backend.close()
    return asyncio.run(go())


def test_queue_list_retry_delete(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["queue", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "dave@remote.example.org" in out and "erin@remote.example.org" in out and "2 entries" in out
    assert "in 9m" in out or "in 10m" in out

    first, second = _entries(config.parent / "data")
    assert main(["--config", str(config), "queue", "retry", str(first.id)]) == 0
    assert "tried again now" in capsys.readouterr().out
    assert _entries(config.parent / "data")[0].next_attempt <= first.next_attempt

    assert main(["queue", "delete", str(second.id), "--config", str(config)]) == 0
    assert "erin@remote.example.org" in capsys.readouterr().out
    assert [e.id for e in _entries(config.parent / "data")] == [first.id]
    # The blob stays while an entry still uses it, and goes with the last one.
    assert main(["queue", "delete", str(first.id), "--config", str(config)]) == 0
    assert list((config.parent / "data" / "blobs").glob("??/*")) == []

    assert main(["queue", "delete", "999", "--config", str(config)]) == 1
    assert "no queue entry 999" in capsys.readouterr().err
    assert main(["queue", "list", "--config", str(config)]) == 0
    assert "empty" in capsys.readouterr().out
