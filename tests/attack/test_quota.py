"""Per-user storage quotas: sizes, config, the service, and the CLI through run.py (issue 11).

The protocols (SMTP 452 4.2.2, IMAP NO [OVERQUOTA], REST 507) are in test_quota_protocols.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rmail.server.config import ConfigError, build_config
from rmail.server.core.errors import InvalidInput, QuotaExceeded
from rmail.server.core.quota import UNLIMITED, QuotaState, format_size, parse_size
from rmail.server.runtime import ServerRuntime

from ..conftest import PASSWORD
from ..helpers.server import cli_runner
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


@pytest.mark.parametrize("text, size", [
    ("0", 0), ("2048", 2048), ("500M", 500 * MIB), ("2G", 2 * GIB), ("2g", 2 * GIB), ("1.5G", 3 * GIB // 2),
    ("10K", 10 * KIB), ("10KB", 10 * KIB), ("2GiB", 2 * GIB), (" 7 M ", 7 * MIB), ("1P", 1 << 50),
])
def test_sizes_are_read_in_binary_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "M", "-1", "2X", "1e9", "0x10", "2 G B", "1.5.1G", "2P", "9" * 30])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_size(text)


@pytest.mark.parametrize("n, text", [(0, "0 bytes"), (812, "812 bytes"), (1024, "1K"), (1536, "1.5K"),
                                     (500 * MIB, "500M"), (3 * GIB // 2, "1.5G"), (150 * MIB + 1, "150M")])
def test_sizes_are_shown_short(n: int, text: str) -> None:
    assert format_size(n) == text


def test_a_full_mailbox_takes_nothing_more() -> None:
    state = QuotaState(used=1000, limit=1000, override=True)
    assert not state.fits(0) and not state.fits(1)
    assert QuotaState(999, 1000, False).fits(1) and not QuotaState(999, 1000, False).fits(2)
    assert QuotaState(10 ** 12, UNLIMITED, False).fits(10 ** 9)
    assert QuotaState(1536, 2048, False).describe() == "1.5K of 2K (default)"
    assert QuotaState(812, UNLIMITED, True).describe() == "812 bytes used, no limit"


@pytest.mark.parametrize("raw, value", [
    ({}, 0), ({"quota": 0}, 0), ({"quota": 5000}, 5000), ({"quota": "2G"}, 2 * GIB),
])
def test_config_quota(raw: dict, value: int) -> None:
    assert build_config({"limits": raw}, {}).limits.quota == value


@pytest.mark.parametrize("raw, message", [
    ({"quota": -1}, "limits.quota: must be bytes or a size"),
    ({"quota": "lots"}, "limits.quota: must be bytes or a size"),
    ({"quota": True}, "limits.quota: must be bytes or a size"),
    ({"quota": 1.5}, "limits.quota: must be bytes or a size"),
    ({"search_budget": -1}, "limits.search_budget: must be CPU seconds"),
    ({"search_budget": "1s"}, "limits.search_budget: must be CPU seconds"),
    ({"send_per_minute": -5}, "limits.send_per_minute: must be a whole number"),
    ({"send_per_minute": 2.5}, "limits.send_per_minute: must be a whole number"),
])
def test_config_errors_name_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        build_config({"limits": raw}, {})
    assert "\n" not in str(info.value)


def test_config_defaults_are_documented_values() -> None:
    limits = build_config({}, {}).limits
    assert (limits.search_budget, limits.quota, limits.send_per_minute) == (10.0, UNLIMITED, 60)
    limits = build_config({"limits": {"search_budget": 0.25, "send_per_minute": 0}}, {}).limits
    assert (limits.search_budget, limits.send_per_minute) == (0.25, 0)


# -- the service over a real store -------------------------------------------------------------

MESSAGE = b"Subject: x\r\n\r\n" + b"y" * 984 + b"\r\n"   # 1,000 bytes


async def test_usage_counts_every_copy_and_drops_with_expunge(runtime: ServerRuntime) -> None:
    quotas = runtime.quotas
    alice = await runtime.accounts.get_user("alice@example.com")
    inbox = (await runtime.store.get_mailbox(alice.id, "INBOX")).id
    archive = (await runtime.store.get_mailbox(alice.id, "Archive")).id
    assert (await quotas.state(alice.id)) == QuotaState(0, UNLIMITED, False)
    uid = await runtime.store.append(inbox, MESSAGE)
    await runtime.store.copy(inbox, [uid], archive)
    assert (await quotas.state(alice.id)).used == 2 * len(MESSAGE)
    await quotas.set(alice, 2500)
    await quotas.check(alice, 500)
    with pytest.raises(QuotaExceeded, match="mailbox of alice@example.com is full"):
        await quotas.check(alice, 501)
    await runtime.store.store_flags(inbox, [uid], "add", ["\\Deleted"])
    await runtime.store.expunge(inbox)
    assert (await quotas.state(alice.id)) == QuotaState(len(MESSAGE), 2500, True)
    bob = await runtime.accounts.get_user("bob@example.com")
    assert await quotas.over([alice, bob], 1501) == [alice]
    assert await quotas.limits() == {alice.id: (2500, True), bob.id: (UNLIMITED, False)}


async def test_limits_default_override_unlimited_and_cleared(runtime: ServerRuntime) -> None:
    quotas = runtime.quotas
    quotas.default = 1000          # as [limits] quota = 1000
    alice = await runtime.accounts.get_user("alice@example.com")
    assert (await quotas.state(alice.id)).limit == 1000
    await quotas.set(alice, UNLIMITED)
    assert (await quotas.state(alice.id)) == QuotaState(0, UNLIMITED, True)
    await quotas.check(alice, 10 ** 9)
    await quotas.set(alice, None)
    assert (await quotas.state(alice.id)) == QuotaState(0, 1000, False)
    with pytest.raises(InvalidInput):
        await quotas.set(alice, -1)


async def test_removing_a_user_removes_its_quota(runtime: ServerRuntime) -> None:
    alice = await runtime.accounts.get_user("alice@example.com")
    await runtime.quotas.set(alice, 12345)
    await runtime.accounts.remove_user("alice@example.com")
    again = await runtime.accounts.add_user("alice@example.com", PASSWORD)
    assert (await runtime.quotas.state(again.id)) == QuotaState(0, UNLIMITED, False)
    assert alice.id not in await runtime.quotas.limits()


# -- the CLI as a user types it --------------------------------------------------------------------

@pytest.fixture
def cli(tmp_path: Path):
    return cli_runner(tmp_path, '[limits]\nquota = "1G"\n')


def test_cli_user_quota(cli) -> None:  # noqa: ANN001
    assert cli("user", "add", "alice@example.com", "--password", "pw").returncode == 0
    assert cli("user", "add", "bob@example.com", "--password", "pw").returncode == 0
    assert cli("user", "quota", "alice@example.com").stdout == "alice@example.com: 0 bytes of 1G (default)\n"
    assert cli("user", "quota", "alice@example.com", "500M").stdout == "alice@example.com: 0 bytes of 500M\n"
    listing = cli("user", "list").stdout.splitlines()
    assert listing == ["alice@example.com\tuser\t0 messages\t0 bytes\tquota 500M (0%)",
                       "bob@example.com\tuser\t0 messages\t0 bytes\tquota 1G (0%)"]
    assert cli("user", "quota", "bob@example.com", "unlimited").stdout == \
        "bob@example.com: 0 bytes used, no limit\n"
    assert "bob@example.com\tuser\t0 messages\t0 bytes\tquota unlimited" in cli("user", "list").stdout
    assert cli("user", "quota", "alice@example.com", "none").stdout == \
        "alice@example.com: 0 bytes of 1G (default)\n"
    bad = cli("user", "quota", "alice@example.com", "12X")
    assert (bad.returncode, bad.stdout) == (1, "")
    assert bad.stderr == "rmail: not a size: '12X' (use bytes or K, M, G, T, e.g. 500M)\n"
    missing = cli("user", "quota", "carol@example.com", "1G")
    assert (missing.returncode, missing.stderr) == (1, "rmail: no user carol@example.com\n")
