"""A throwaway PostgreSQL cluster for the benchmarks, with PostgreSQL's durable defaults
(fsync on, every commit flushed), from the server binaries on this machine."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.pg import Cluster, missing_reason  # noqa: E402


def start_bench_cluster() -> Cluster:
    reason = missing_reason()
    if reason is not None:
        raise SystemExit(f"cannot start PostgreSQL: {reason}")
    return Cluster(durable=True).start()
