"""Why asyncpg: the PostgreSQL driver's own cost per round trip, the thing rmail's store does
most (a lookup, a small write), asyncpg against psycopg 3 (async, with its pool), on one
throwaway cluster with durable defaults (bench/benchpg.py).

    .venv/bin/pip install "psycopg[binary]" psycopg_pool    # only to compare; rmail uses asyncpg
    .venv/bin/python bench/pgdriver_bench.py [--seconds 3] [--tasks 1,16]

Per driver: one-row SELECTs by key, and durable one-row INSERT transactions (BEGIN, INSERT,
COMMIT), from ``tasks`` concurrent tasks sharing a pool of 16 connections.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchpg import start_bench_cluster  # noqa: E402

SETUP = ("CREATE TABLE IF NOT EXISTS kv(k bigint PRIMARY KEY, v text NOT NULL);"
         "INSERT INTO kv SELECT g, 'value ' || g FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING;"
         "CREATE TABLE IF NOT EXISTS log(id bigserial PRIMARY KEY, v text NOT NULL)")


async def run(op, tasks: int, seconds: float) -> float:  # noqa: ANN001
    count = 0
    stop = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal count
        i = w
        while time.perf_counter() < stop:
            await op(1 + i % 1000)
            i += tasks
            count += 1
    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(tasks)))
    return count / (time.perf_counter() - start)


async def with_asyncpg(url: str, tasks: int, seconds: float) -> tuple[float, float]:
    import asyncpg
    pool = await asyncpg.create_pool(url, min_size=16, max_size=16)
    async with pool.acquire() as conn:
        await conn.execute(SETUP)

    async def select(k: int) -> None:
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT v FROM kv WHERE k = $1", k)

    async def insert(k: int) -> None:
        async with pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute("INSERT INTO log(v) VALUES($1)", str(k))
    try:
        return await run(select, tasks, seconds), await run(insert, tasks, seconds)
    finally:
        await pool.close()


async def with_psycopg(url: str, tasks: int, seconds: float) -> tuple[float, float]:
    from psycopg_pool import AsyncConnectionPool
    pool = AsyncConnectionPool(url, min_size=16, max_size=16, open=False)
    await pool.open()
    async with pool.connection() as conn:
        await conn.execute(SETUP)

    async def select(k: int) -> None:
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT v FROM kv WHERE k = %s", (k,))
            await cur.fetchone()

    async def insert(k: int) -> None:
        async with pool.connection() as conn:   # the block is one transaction, committed on exit
            await conn.execute("INSERT INTO log(v) VALUES(%s)", (str(k),))
    try:
        return await run(select, tasks, seconds), await run(insert, tasks, seconds)
    finally:
        await pool.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--tasks", default="1,16")
    args = ap.parse_args()
    cluster = start_bench_cluster()
    try:
        url = cluster.create_database()
        print(f"{'driver':10} {'tasks':>5} {'SELECT/s':>10} {'INSERT txn/s':>13}")
        for tasks in (int(t) for t in args.tasks.split(",")):
            for name, fn in (("asyncpg", with_asyncpg), ("psycopg", with_psycopg)):
                try:
                    reads, writes = await fn(url, tasks, args.seconds)
                except ImportError:
                    print(f"{name:10} not installed")
                    continue
                print(f"{name:10} {tasks:>5} {reads:>10.0f} {writes:>13.0f}", flush=True)
    finally:
        cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
