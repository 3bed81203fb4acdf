"""Durable store throughput: deliveries/s with 1, 8 and 32 concurrent deliverers (2 KiB and
100 KiB messages), and metadata reads/s, on the embedded SQLite store and on PostgreSQL (a
throwaway cluster on this machine with its durable defaults). Every delivery counted returned
only after its bytes and rows were committed durably.

    .venv/bin/python bench/store_bench.py [--seconds 5] [--backend sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rmail.server.core.accounts import Accounts  # noqa: E402
from rmail.server.core.storage import StoreLocation, open_backend  # noqa: E402

CLUSTER = None


def location(d: Path, kind: str) -> StoreLocation:
    if kind == "sqlite":
        return StoreLocation(d)
    global CLUSTER
    if CLUSTER is None:
        from benchpg import start_bench_cluster
        CLUSTER = start_bench_cluster()
    return StoreLocation(d, CLUSTER.create_database())


def message(size: int, n: int) -> bytes:
    head = (f"From: Bench <bench@example.org>\r\nTo: user@example.com\r\nSubject: bench {n}\r\n"
            f"Message-ID: <{n}@bench>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n").encode()
    line = b"The quick brown fox jumps over the lazy dog 0123456789.\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


async def deliveries(kind: str, concurrency: int, size: int, seconds: float) -> float:
    d = Path(tempfile.mkdtemp(prefix="rmail-bench-", dir=os.environ.get("BENCH_DIR")))
    store_backend = await open_backend(location(d, kind), recover=True, pool_size=max(concurrency, 2))
    store = store_backend.mail
    try:
        user = await Accounts(store_backend.directory, bcrypt_rounds=4).add_user("user@example.com", "pw")
        inbox = (await store.get_mailbox(user.id, "INBOX")).id
        count = 0
        stop = time.perf_counter() + seconds

        async def worker(w: int) -> None:
            nonlocal count
            i = 0
            while time.perf_counter() < stop:
                i += 1
                await store.deliver([(inbox, ())], message(size, w * 1_000_000 + i))
                count += 1
        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        return count / (time.perf_counter() - start)
    finally:
        await store_backend.close()
        shutil.rmtree(d, ignore_errors=True)


async def metadata_reads(kind: str, seconds: float) -> tuple[float, float]:
    d = Path(tempfile.mkdtemp(prefix="rmail-bench-", dir=os.environ.get("BENCH_DIR")))
    store_backend = await open_backend(location(d, kind), recover=True)
    store = store_backend.mail
    try:
        user = await Accounts(store_backend.directory, bcrypt_rounds=4).add_user("user@example.com", "pw")
        inbox = (await store.get_mailbox(user.id, "INBOX")).id
        await asyncio.gather(*(store.deliver([(inbox, ())], message(2048, i)) for i in range(1000)))
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 2:
            await store.fetch_info(inbox, [1 + (n % 1000)])
            n += 1
        single = n / (time.perf_counter() - start)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 2:
            await store.list_messages(inbox)
            n += 1
        listing = n * 1000 / (time.perf_counter() - start)
        return single, listing
    finally:
        await store_backend.close()
        shutil.rmtree(d, ignore_errors=True)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    args = ap.parse_args()
    kinds = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    try:
        for kind in kinds:
            print(f"{kind}:\n{'deliverers':>10} {'size':>7} {'durable deliveries/s':>22}")
            for size in (2048, 100 * 1024):
                for conc in (1, 8, 32):
                    rate = await deliveries(kind, conc, size, args.seconds)
                    print(f"{conc:>10} {size // 1024:>5}KiB {rate:>22.0f}", flush=True)
            single, listing = await metadata_reads(kind, args.seconds)
            print(f"metadata reads: {single:.0f} single-message fetch_info/s; {listing:.0f} message rows/s"
                  " via list_messages", flush=True)
    finally:
        if CLUSTER is not None:
            CLUSTER.stop()


if __name__ == "__main__":
    asyncio.run(main())
