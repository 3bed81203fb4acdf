"""200 IMAP clients logging in at once (issue 16): a team's mail clients after a network blip.

A `run.py serve` child with bcrypt at the default cost (12) and ``--users`` accounts; every
client connects from 127.0.0.1 at the same moment and sends LOGIN. Measured: the time from
the first connect until the last LOGIN's OK, and each client's connect-to-OK latency.
Two rounds: *cold* (a freshly started server: every password pays bcrypt) and *cached* (the
same clients again after LOGOUT: the verified-credential cache answers).

    .venv/bin/python bench/login_burst.py [--clients 200] [--users 200] [--bcrypt-rounds 12]

With fewer users than clients, clients share accounts round-robin (5 connections per person
is Thunderbird's default).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rmail.server.core.accounts import Accounts  # noqa: E402
from rmail.server.core.storage import StoreLocation, open_backend  # noqa: E402
from tests.attack.conn_tools import ServeProcess, close, connect_from, raise_nofile, read_line  # noqa: E402
from tests.conftest import PASSWORD  # noqa: E402


async def make_users(data_dir: Path, users: int, rounds: int) -> list[str]:
    """Accounts ``burst0000@example.com``...; hashed on threads (bcrypt releases the GIL)."""
    backend = await open_backend(StoreLocation(data_dir, None))
    try:
        accounts = Accounts(backend.directory, bcrypt_rounds=rounds)
        names = [f"burst{n:04d}@example.com" for n in range(users)]
        for i in range(0, users, 16):
            await asyncio.gather(*(accounts.add_user(name, PASSWORD) for name in names[i:i + 16]))
        return names
    finally:
        await backend.close()


async def login_once(port: int, user: str, start: float) -> float:
    """Connect, LOGIN, LOGOUT; seconds from ``start`` until the LOGIN's OK."""
    reader, writer = await connect_from(port)
    try:
        greeting = await read_line(reader, 120)
        assert greeting.startswith(b"* OK"), greeting
        writer.write(f'a LOGIN "{user}" "{PASSWORD}"\r\n'.encode())
        while True:
            line = await read_line(reader, 120)
            if line.startswith(b"a "):
                break
        assert line.startswith(b"a OK"), line
        done = time.perf_counter() - start
        writer.write(b"b LOGOUT\r\n")
        return done
    finally:
        await close(writer)


async def burst(port: int, users: list[str], clients: int) -> list[float]:
    start = time.perf_counter()
    return list(await asyncio.gather(*(login_once(port, users[i % len(users)], start) for i in range(clients))))


def report(label: str, times: list[float]) -> None:
    times.sort()
    p95 = times[int(len(times) * 0.95) - 1]
    print(f"{label:7} {len(times)} logins: all in {times[-1]:.2f} s; per client median "
          f"{statistics.median(times):.2f} s, p95 {p95:.2f} s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--bcrypt-rounds", type=int, default=12)
    args = parser.parse_args()
    raise_nofile(4 * args.clients + 256)
    with tempfile.TemporaryDirectory(prefix="rmail-login-burst-") as tmp:
        t0 = time.perf_counter()
        users = await make_users(Path(tmp) / "data", args.users, args.bcrypt_rounds)
        print(f"{args.users} users at bcrypt cost {args.bcrypt_rounds} made in {time.perf_counter() - t0:.0f} s")
        server = ServeProcess.start(Path(tmp), bcrypt_rounds=args.bcrypt_rounds)
        try:
            port = server.ports["imap"]
            report("cold", await burst(port, users, args.clients))
            report("cached", await burst(port, users, args.clients))
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
