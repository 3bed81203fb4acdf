"""A wrong password costs the same for an existing and a missing user (issue 11 measured
~450 ms against ~2 ms: the dummy hash had cost 4, real hashes cost 12).

Two checks: the dummy hash has exactly the configured cost (what makes the timing equal, and
cannot flake), and a coarse timing comparison over real IMAP connections with a cost where
one check takes tens of milliseconds, medians of interleaved samples, within 0.5x..2x (the
old gap was over 100x).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from rmail.server.core.accounts import hash_cost
from rmail.server.runtime import ServerRuntime

from ..conftest import PASSWORD
from ..helpers.server import make_config
from .auth_clients import Outcome, imap

ROUNDS = 9                  # ~30 ms a check here: large against connection noise, cheap enough
SAMPLES = 7
GENEROUS = {"auth_pair_failures": 1000, "auth_failures": 1000, "auth_account_failures": 1000}


async def test_missing_and_existing_users_cost_the_same(tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "data", bcrypt_rounds=ROUNDS, limits=GENEROUS)
    async with ServerRuntime(cfg, auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        stored = await rt.store.db.read(lambda conn: conn.execute("SELECT password_hash FROM users").fetchone()[0])
        assert hash_cost(rt.accounts.dummy_hash) == hash_cost(stored) == ROUNDS

        port = rt.port("imap")
        times: dict[str, list[float]] = {"alice@example.com": [], "nobody@example.com": []}
        for i in range(SAMPLES):
            for user, samples in times.items():
                start = time.perf_counter()
                reply = await imap(port, user, f"wrong-{i}")
                samples.append(time.perf_counter() - start)
                assert reply.outcome is Outcome.WRONG
        existing = statistics.median(times["alice@example.com"])
        missing = statistics.median(times["nobody@example.com"])
        assert 0.5 < missing / existing < 2, (existing, missing)
