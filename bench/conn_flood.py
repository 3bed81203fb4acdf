"""Connection-level attacks on a `run.py serve` child process, measured (issue 11 figures).

1. Literal flood: 40 unauthenticated IMAP connections announce `a LOGIN {25165000}` and, when
   answered "+", send ``--push`` MiB of the literal each; the server's RSS growth.
2. Idle flood: 1,000 idle connections from 127.0.0.2-22 over IMAP, submission, port 25 and
   the API; then a real user on 127.0.0.1 connects and logs in to IMAP ``--logins`` times:
   how long from connect to the LOGIN's OK (or what refused it). The same without a flood first.

``--root`` picks the checkout the server runs from, so the figures before and after a change
come from the same client:

    .venv/bin/python bench/conn_flood.py [--root /path/to/other/checkout] [--bcrypt-rounds 12]
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

from tests.attack.conn_tools import (ATTACKERS, ServeProcess, close, connect_from,  # noqa: E402
                                     raise_nofile, read_line)
from tests.conftest import PASSWORD  # noqa: E402

LITERAL = 25165000


async def literal_flood(server: ServeProcess, connections: int, push_mib: int) -> None:
    port = server.ports["imap"]
    before = server.rss()
    conns = []
    plus = 0
    for i in range(connections):
        reader, writer = await connect_from(port, ATTACKERS[i % len(ATTACKERS)])
        await read_line(reader)
        writer.write(b"a LOGIN {%d}\r\n" % LITERAL)
        reply = await read_line(reader)
        plus += reply.startswith(b"+")
        conns.append((reader, writer))
    chunk = b"x" * (1024 * 1024)
    start = time.perf_counter()
    for _ in range(push_mib):
        for _, writer in conns:
            if not writer.is_closing():
                writer.write(chunk)
        await asyncio.gather(*(w.drain() for _, w in conns if not w.is_closing()), return_exceptions=True)
    await asyncio.sleep(1)
    grown = server.rss() - before
    print(f"literal flood: {connections} connections, {plus} answered '+', {push_mib} MiB pushed each "
          f"in {time.perf_counter() - start:.1f} s: server RSS {before >> 20} MiB -> +{grown / 2**20:.0f} MiB")
    for _, writer in conns:
        await close(writer)


async def imap_login_time(port: int) -> tuple[float, str]:
    start = time.perf_counter()
    reader, writer = await connect_from(port, "127.0.0.1")
    try:
        greeting = await read_line(reader, 30)
        if not greeting.startswith(b"* OK"):
            return time.perf_counter() - start, greeting.decode().strip()
        writer.write(b"a LOGIN alice@example.com " + PASSWORD.encode() + b"\r\n")
        while True:
            line = await read_line(reader, 60)
            if not line or line.startswith(b"a "):
                return time.perf_counter() - start, (line.decode().strip() or "closed")
    finally:
        await close(writer)


async def idle_flood(server: ServeProcess, flood: int, logins: int) -> None:
    def report(label: str, results: list[tuple[float, str]]) -> None:
        ok = [t for t, r in results if r.startswith("a OK")]
        others = sorted({r for _, r in results if not r.startswith("a OK")})
        median = f"median {statistics.median(ok) * 1000:.0f} ms, max {max(ok) * 1000:.0f} ms" if ok else "none"
        print(f"{label}: {len(ok)}/{len(results)} logged in ({median})" + (f"; refused: {others}" if others else ""))

    port = server.ports["imap"]
    report("IMAP login, no flood", [await imap_login_time(port) for _ in range(logins)])
    ports = [server.ports[n] for n in ("imap", "submission", "smtp", "api")]
    rss = server.rss()
    held = []
    for i in range(flood):
        try:
            held.append(await connect_from(ports[i % 4], ATTACKERS[i % len(ATTACKERS)]))
        except OSError:
            pass
    await asyncio.sleep(1)
    print(f"idle flood of {len(held)}: server RSS +{(server.rss() - rss) / 2**20:.0f} MiB")
    report(f"IMAP login during an idle flood of {len(held)}", [await imap_login_time(port) for _ in range(logins)])
    for _, writer in held:
        await close(writer)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout to run the server from")
    parser.add_argument("--connections", type=int, default=40)
    parser.add_argument("--push", type=int, default=8, help="MiB each literal-flood connection sends")
    parser.add_argument("--flood", type=int, default=1000)
    parser.add_argument("--logins", type=int, default=5)
    parser.add_argument("--bcrypt-rounds", type=int, default=4)
    args = parser.parse_args()
    raise_nofile(2 * args.flood + 512)
    print(f"server from {args.root} (bcrypt cost {args.bcrypt_rounds})")
    for phase in (lambda s: literal_flood(s, args.connections, args.push),
                  lambda s: idle_flood(s, args.flood, args.logins)):
        with tempfile.TemporaryDirectory() as tmp:
            server = ServeProcess.start(Path(tmp), root=args.root, bcrypt_rounds=args.bcrypt_rounds)
            try:
                await asyncio.sleep(0.5)
                await phase(server)
            finally:
                server.stop()


if __name__ == "__main__":
    asyncio.run(main())
