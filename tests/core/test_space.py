"""The free-space reserve (limits.min_free_space): measured with a cached statvfs, refuses
only writes that add mail, logs when crossed, and its config key is validated."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from rmail.server.config import MIB, ConfigError, build_config
from rmail.server.core.accounts import Accounts
from rmail.server.core.errors import StorageFull, TemporaryFailure
from rmail.server.core.space import FreeSpace
from rmail.server.core.storage import MailStore
from tests.helpers.stores import open_sqlite

MSG = b"Subject: s\r\n\r\nbody\r\n"


class FakeDisk:
    """statvfs of a disk whose free space the test sets; counts the calls."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.calls = 0

    def __call__(self, path: Path) -> os.statvfs_result:
        self.calls += 1
        frsize = 4096
        return os.statvfs_result((frsize, frsize, 10**6, 0, self.free // frsize, 0, 0, 0, 0, 255))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_refuses_below_the_reserve_and_caches_for_a_second(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    disk, clock = FakeDisk(500 * MIB), Clock()
    space = FreeSpace(tmp_path, 100 * MIB, statvfs=disk, clock=clock)
    for _ in range(50):
        await space.require()
    assert disk.calls == 1, "one statvfs per TTL, however many writes"
    disk.free = 10 * MIB
    await space.require()                      # still the cached, healthy measurement
    clock.now += 1.5
    with caplog.at_level(logging.INFO, logger="rmail.store"):
        with pytest.raises(StorageFull) as exc:
            await space.require()
        assert isinstance(exc.value, TemporaryFailure)
        assert space.state is not None and space.state.low
        with pytest.raises(StorageFull):
            await space.require()
        clock.now += 1.5
        disk.free = 200 * MIB
        await space.require()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, "one line when the reserve is crossed, one when space is back"
    assert "10 MiB free, reserve 100 MiB (limits.min_free_space): new mail is refused" in messages[0]
    assert "200 MiB free again" in messages[1]


async def test_a_burst_within_one_measurement_cannot_run_through_the_reserve(tmp_path: Path) -> None:
    disk = FakeDisk(130 * MIB)
    space = FreeSpace(tmp_path, 100 * MIB, statvfs=disk, clock=Clock())
    for _ in range(4):
        await space.require(2 * MIB)    # each counts COST (3) times: 24 MiB in all
    with pytest.raises(StorageFull):
        await space.require(3 * MIB)    # 130 - 24 - 9 < 100: refused before the disk says so
    assert space.state is not None and space.state.free == 106 * MIB
    assert space.state.low, "refusing: the header says so although 106 MiB > 100 MiB"
    await space.require(2 * MIB)        # 130 - 24 - 6 = 100: down to the reserve is allowed
    assert disk.calls == 1


async def test_no_reserve_means_no_measurement(tmp_path: Path) -> None:
    disk = FakeDisk(0)
    space = FreeSpace(tmp_path, 0, statvfs=disk)
    await space.require()
    assert disk.calls == 0


async def test_store_refuses_adds_but_not_deletions_when_low(tmp_path: Path) -> None:
    store_backend = await open_sqlite(tmp_path, recover=True, min_free_space=100 * MIB)
    store = store_backend.mail
    assert store.space.reserve == 100 * MIB
    # The real disk has plenty; pretend it has not.
    disk, clock = FakeDisk(500 * MIB), Clock()
    store.space = FreeSpace(tmp_path, 100 * MIB, statvfs=disk, clock=clock)
    try:
        alice = await Accounts(store_backend.directory, bcrypt_rounds=4).add_user("alice@example.com", "pw")
        inbox = (await store.get_mailbox(alice.id, "INBOX")).id
        archive = (await store.get_mailbox(alice.id, "Archive")).id
        uids = [await store.append(inbox, MSG) for _ in range(3)]
        disk.free = MIB
        clock.now += 1.5
        with pytest.raises(StorageFull):
            await store.append(inbox, MSG)
        with pytest.raises(StorageFull):
            await store.copy(inbox, uids[:1], archive)
        # What frees space, or costs none, still works.
        assert await store.move(inbox, uids[:1], archive)
        await store.store_flags(inbox, uids[1:2], "add", ["\\Deleted"])
        assert await store.expunge(inbox) == uids[1:2]
        assert await store.delete_messages(inbox, uids[2:]) == uids[2:]
        await store.delete_mailbox(alice.id, "Archive")
        assert (await store.status(inbox)).messages == 0
    finally:
        await store_backend.close()


def test_config_key() -> None:
    assert build_config({}, {}).limits.min_free_space == 256 * MIB
    assert build_config({"limits": {"min_free_space": 0}}, {}).limits.min_free_space == 0
    for bad in (-1, "1G", True, 1.5):
        with pytest.raises(ConfigError) as exc:
            build_config({"limits": {"min_free_space": bad}}, {})
        assert str(exc.value).startswith("limits.min_free_space:") and "\n" not in str(exc.value)
