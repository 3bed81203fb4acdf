"""Two rmail nodes on one PostgreSQL database: how long a delivery through node A takes to
reach IMAP IDLE sessions on node B (the LISTEN/NOTIFY change feed), at a steady offered rate.

    .venv/bin/python bench/nodes_bench.py [--rate 300] [--seconds 10] [--idlers 20] [--senders 32]

Both nodes run as ``run.py serve`` processes on a throwaway PostgreSQL cluster with its
durable defaults (bench/benchpg.py). This process sends over SMTP to node A (port 25, one
recipient per message, recipients rotating over the idling users) at ``--rate`` messages/s
and keeps ``--idlers`` IDLE sessions on node B, one per user. For each message the latency is
from the 250 reply to DATA on A (the message is durable) to the ``* N EXISTS`` line on the
recipient's session on B. Port 25's mail authentication is off on node A (``[antispam] checks =
false``): this measures the change feed between nodes, and on this 2-core machine SPF, DKIM and
DMARC per message would cap node A below the offered rate (bench/smtp_bench.py measures them).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchdns import dns_toml, start_bench_dns  # noqa: E402
from benchpg import start_bench_cluster  # noqa: E402
from smtp_bench import free_port, wait_port  # noqa: E402

PASSWORD = "bench-password"


def node_config(workdir: Path, name: str, url: str, dns) -> tuple[Path, dict[str, int]]:  # noqa: ANN001
    ports = {"smtp": free_port(), "imap": free_port()}
    path = workdir / f"{name}.toml"
    path.write_text(f'data_dir = "{workdir / name}"\nbcrypt_rounds = 4\nhostname = "{name}.bench.example"\n'
                    "[limits]\nconnections_per_ip = 1000\nsmtp_connection_rate = 1000000000\n"
                    "smtp_message_rate = 1000000000\nauth_cache_seconds = 300\n[antispam]\nchecks = false\n"
                    f"[ports]\nsmtp = {ports['smtp']}\nsubmission = 0\nsmtps = 0\nimap = {ports['imap']}\n"
                    "imaps = 0\napi = 0\n" + dns_toml(dns) + f'[store]\nurl = "{url}"\n')
    return path, ports


async def seed(url: str, users: list[str]) -> None:
    from rmail.server.core.accounts import Accounts
    from rmail.server.core.storage import StoreLocation, open_backend
    backend = await open_backend(StoreLocation(Path(tempfile.mkdtemp()), url))
    try:
        accounts = Accounts(backend.directory, bcrypt_rounds=4)
        for user in users:
            await accounts.add_user(user, PASSWORD)
    finally:
        await backend.close()


class Idler:
    """One IMAP session on node B in IDLE on a user's INBOX, recording when each EXISTS comes."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}

    def announced(self, n: int) -> float | None:
        """When the session first learnt of its n-th message: an EXISTS of n or more (a
        session may announce several new messages in one EXISTS)."""
        times = [at for count, at in self.arrived.items() if count >= n]
        return min(times) if times else None

    async def run(self, port: int, user: str, ready: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        writer.write(f"a LOGIN {user} {PASSWORD}\r\nb SELECT INBOX\r\nc IDLE\r\n".encode())
        while not (await reader.readline()).startswith(b"+ "):
            pass
        ready.set()
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.endswith(b" EXISTS\r\n"):
                self.arrived[int(line.split()[1])] = time.perf_counter()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=300.0, help="messages per second offered to node A")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--idlers", type=int, default=20)
    ap.add_argument("--senders", type=int, default=32, help="SMTP connections to node A")
    args = ap.parse_args()
    import aiosmtplib

    users = [f"idle{i}@bench.example" for i in range(args.idlers)]
    cluster = start_bench_cluster()
    dns = start_bench_dns()
    procs: list[subprocess.Popen] = []
    workdir = Path(tempfile.mkdtemp(prefix="rmail-nodes-"))
    try:
        url = cluster.create_database()
        await seed(url, users)
        ports = {}
        for name in ("a", "b"):
            config, ports[name] = node_config(workdir, name, url, dns)
            proc = subprocess.Popen([sys.executable, "run.py", "serve", "--config", str(config), "--log-level", "WARNING"],
                                    cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(proc)
            wait_port(ports[name]["smtp"], proc)
            wait_port(ports[name]["imap"], proc)
        idlers = [Idler() for _ in users]
        readies = [asyncio.Event() for _ in users]
        tasks = [asyncio.create_task(i.run(ports["b"]["imap"], u, r)) for i, u, r in zip(idlers, users, readies)]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)

        sent: dict[tuple[int, int], float] = {}      # (user index, its n-th message) → 250 time
        counts = [0] * len(users)
        total = int(args.rate * args.seconds)
        interval = args.senders / args.rate
        start = time.perf_counter()

        async def sender(s: int) -> None:
            async with aiosmtplib.SMTP(hostname="127.0.0.1", port=ports["a"]["smtp"], timeout=30) as smtp:
                k = s
                while k < total:
                    due = start + k / args.rate
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    u = k % len(users)
                    body = (f"From: x@remote.example\r\nTo: {users[u]}\r\nSubject: m{k}\r\n\r\nbody\r\n").encode()
                    await smtp.sendmail("x@remote.example", [users[u]], body)
                    counts[u] += 1
                    sent[(u, counts[u])] = time.perf_counter()
                    k += args.senders
        await asyncio.gather(*(sender(s) for s in range(args.senders)))
        elapsed = time.perf_counter() - start
        await asyncio.sleep(3)    # the last notices
        latencies, missing = [], 0
        for (u, n), at in sent.items():
            seen = idlers[u].announced(n)
            if seen is None:
                missing += 1
            else:
                latencies.append(max(0.0, seen - at))
        for t in tasks:
            t.cancel()
        latencies.sort()
        q = statistics.quantiles(latencies, n=100) if len(latencies) >= 100 else latencies
        print(f"offered {args.rate:.0f}/s, achieved {len(sent) / elapsed:.0f}/s over {elapsed:.1f} s; "
              f"{len(sent)} messages, {missing} never announced on node B")
        print(f"delivery on A → EXISTS on B: median {statistics.median(latencies) * 1000:.1f} ms, "
              f"p99 {q[98] * 1000 if len(q) >= 99 else max(latencies) * 1000:.1f} ms, "
              f"max {max(latencies) * 1000:.1f} ms, within 1 s: "
              f"{sum(1 for x in latencies if x <= 1.0) / len(sent) * 100:.2f}%")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
