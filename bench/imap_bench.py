"""IMAP benchmark (issue 4 targets): a raw-socket client that does not parse replies.

Runs the server in a child process (`--serve`), so the client's work is not counted, fills a
10,000-message INBOX through the store, then measures from "command sent" to "tagged OK
seen": SELECT, UID FETCH 1:* (FLAGS), UID FETCH 1:* (ENVELOPE), SEARCH UNSEEN, SEARCH TEXT;
APPEND throughput over 4 connections; a mixed load of 20 clients; 1,000 IDLE sessions (server
memory each, and how long an SMTP delivery takes to reach all of them).

    .venv/bin/python bench/imap_bench.py [--messages 10000] [--idle 1000] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "bench-password"
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey xray").split()
MIXED_CLIENTS = 20
MIXED_MESSAGES = 200


def make_message(i: int, rng: random.Random) -> bytes:
    words = " ".join(rng.choice(WORDS) for _ in range(60))
    return (f"From: Sender {i % 97} <sender{i % 97}@example.org>\r\n"
            f"To: alice@example.com\r\nSubject: message {i} {rng.choice(WORDS)}\r\n"
            f"Date: Tue, 05 Mar 2024 09:{i % 60:02d}:07 +0100\r\n"
            f"Message-ID: <{i}.bench@example.org>\r\n\r\n{words}\r\n"
            + ("needle\r\n" if i % 500 == 0 else "")).encode()


# -- server side ---------------------------------------------------------------------------------

async def serve(data_dir: Path, messages: int, idle: int) -> None:
    from rmail.server.runtime import ServerRuntime
    from tests.helpers.server import make_config

    limits = {"connections": idle + 500, "connections_per_ip": idle + 500, "preauth_connections": idle + 500,
              "connections_per_user": idle + 100, "message_size": 1024 * 1024}
    cfg = make_config(data_dir, limits=limits)
    async with ServerRuntime(cfg, auth_delay=0) as rt:
        store = rt.store
        fresh = await rt.accounts.find_user("alice@example.com") is None
        if fresh:
            alice = await rt.accounts.add_user("alice@example.com", PASSWORD)
            await rt.accounts.add_user("idle@example.com", PASSWORD)
            for n in range(MIXED_CLIENTS):
                await rt.accounts.add_user(f"mix{n}@example.com", PASSWORD)
            rng = random.Random(4)
            inbox = (await store.get_mailbox(alice.id, "INBOX")).id
            sem = asyncio.Semaphore(64)

            async def put(box: int, i: int) -> None:
                async with sem:
                    flags = ["\\Seen"] if rng.random() < 0.7 else []
                    await store.append(box, make_message(i, rng), flags)
            await asyncio.gather(*(put(inbox, i) for i in range(messages)))
            for n in range(MIXED_CLIENTS):
                acct = await rt.accounts.get_user(f"mix{n}@example.com")
                box = (await store.get_mailbox(acct.id, "INBOX")).id
                await asyncio.gather(*(put(box, i) for i in range(MIXED_MESSAGES)))
        ports = {"imap": rt.port("imap"), "pid": os.getpid()}
        try:
            ports["smtp"] = rt.port("smtp")
        except KeyError:
            pass
        print(json.dumps(ports), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


# -- client side ---------------------------------------------------------------------------------

class Raw:
    """Sends a command and waits for its tagged completion without parsing anything else."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.n = 0

    @classmethod
    async def login(cls, port: int, user: str = "alice@example.com") -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**24)
        raw = cls(reader, writer)
        await reader.readline()
        await raw.cmd(f"LOGIN {user} {PASSWORD}".encode())
        return raw

    async def cmd(self, text: bytes) -> float:
        self.n += 1
        tag = b"Z%d" % self.n
        marker = b"\r\n" + tag + b" "
        start = time.perf_counter()
        self.writer.write(tag + b" " + text + b"\r\n")
        carry = b"\r\n"
        while True:
            chunk = await self.reader.read(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            window = carry + chunk
            pos = window.find(marker)
            if pos >= 0:
                line_end = window.find(b"\r\n", pos + 2)
                while line_end < 0:
                    window += await self.reader.read(1 << 16)
                    line_end = window.find(b"\r\n", pos + 2)
                elapsed = time.perf_counter() - start
                status = window[pos + len(marker):pos + len(marker) + 2]
                if status != b"OK":
                    raise RuntimeError(f"{text[:40]!r}: {window[pos:line_end]!r}")
                return elapsed
            carry = window[-(len(marker) + 2):]

    async def close(self) -> None:
        self.writer.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def median_ms(raw: Raw, text: bytes, runs: int) -> float:
    await raw.cmd(text)  # warm-up
    return statistics.median([await raw.cmd(text) for _ in range(runs)]) * 1000


async def bench_append(port: int, per_conn: int = 250, conns: int = 4) -> float:
    clients = [await Raw.login(port) for _ in range(conns)]
    for c in clients:
        await c.cmd(b"CREATE Bench%d" % id(c))
    rng = random.Random(9)
    msgs = [make_message(100000 + i, rng) for i in range(per_conn)]

    async def run(c: Raw) -> None:
        for m in msgs:
            await c.cmd(b"APPEND Bench%d {%d+}\r\n%b" % (id(c), len(m), m))
    start = time.perf_counter()
    await asyncio.gather(*(run(c) for c in clients))
    elapsed = time.perf_counter() - start
    for c in clients:
        await c.close()
    return per_conn * conns / elapsed


async def bench_mixed(port: int, seconds: float) -> float:
    clients = [await Raw.login(port, f"mix{n}@example.com") for n in range(MIXED_CLIENTS)]
    rng = random.Random(5)
    msg = make_message(999999, rng)
    count = 0
    stop = time.perf_counter() + seconds

    async def run(c: Raw) -> None:
        nonlocal count
        while time.perf_counter() < stop:
            await c.cmd(b"SELECT INBOX")
            await c.cmd(b"FETCH 1:20 (FLAGS ENVELOPE)")
            await c.cmd(b"STORE 1 +FLAGS.SILENT (\\Deleted)")
            await c.cmd(b"EXPUNGE")
            await c.cmd(b"APPEND INBOX {%d+}\r\n%b" % (len(msg), msg))
            count += 5
    start = time.perf_counter()
    await asyncio.gather(*(run(c) for c in clients))
    elapsed = time.perf_counter() - start
    for c in clients:
        await c.close()
    return count / elapsed


async def bench_idle(ports: dict, n: int) -> tuple[float, float]:
    pid = ports["pid"]
    port = ports["imap"]
    base = rss_kib(pid)
    sessions: list[Raw] = []
    for start in range(0, n, 100):
        batch = await asyncio.gather(*(Raw.login(port, "idle@example.com")
                                       for _ in range(min(100, n - start))))
        sessions += batch
    for s in sessions:
        await s.cmd(b"SELECT INBOX")
    for s in sessions:
        s.writer.write(b"I IDLE\r\n")
    for s in sessions:
        await s.reader.readline()  # "+ idling"
    await asyncio.sleep(1)
    per_session = (rss_kib(pid) - base) / n

    async def hears(s: Raw) -> None:
        while b"EXISTS" not in await s.reader.readline():
            pass
    waiters = [asyncio.ensure_future(hears(s)) for s in sessions]
    msg = b"Subject: wake up\r\n\r\nhello idlers\r\n"
    start = time.perf_counter()
    if "smtp" in ports:
        def send() -> None:
            with smtplib.SMTP("127.0.0.1", ports["smtp"]) as smtp:
                smtp.sendmail("bob@example.org", ["idle@example.com"], msg)
        await asyncio.to_thread(send)
    else:
        poster = await Raw.login(port, "idle@example.com")
        await poster.cmd(b"APPEND INBOX {%d+}\r\n%b" % (len(msg), msg))
    await asyncio.gather(*waiters)
    reach = time.perf_counter() - start
    for s in sessions:
        await s.close()
    return per_session, reach


async def client(ports: dict, args: argparse.Namespace) -> dict:
    port = ports["imap"]
    raw = await Raw.login(port)
    results = {
        "SELECT INBOX (ms)": await median_ms(raw, b"SELECT INBOX", 20),
        "UID FETCH 1:* (FLAGS) (ms)": await median_ms(raw, b"UID FETCH 1:* (FLAGS)", 10),
        "UID FETCH 1:* (ENVELOPE) (ms)": await median_ms(raw, b"UID FETCH 1:* (ENVELOPE)", 10),
        "SEARCH UNSEEN (ms)": await median_ms(raw, b"SEARCH UNSEEN", 20),
        "SEARCH TEXT needle (ms)": await median_ms(raw, b"SEARCH TEXT needle", 5),
    }
    await raw.close()
    results["APPEND (messages/s, 4 connections)"] = await bench_append(port)
    results["mixed load (commands/s, 20 clients)"] = await bench_mixed(port, args.duration)
    per_session, reach = await bench_idle(ports, args.idle)
    results[f"IDLE memory per session (KiB, {args.idle} sessions)"] = per_session
    results[f"delivery reaching {args.idle} IDLE sessions (s)"] = reach
    return results


TARGETS = {
    "SELECT INBOX (ms)": "≤ 60", "UID FETCH 1:* (FLAGS) (ms)": "≤ 50",
    "UID FETCH 1:* (ENVELOPE) (ms)": "≤ 250", "SEARCH UNSEEN (ms)": "≤ 10",
    "SEARCH TEXT needle (ms)": "≤ 600", "APPEND (messages/s, 4 connections)": "≥ 250",
    "mixed load (commands/s, 20 clients)": "≥ 1000",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--data", type=Path, help="reuse a data dir (skips filling the INBOX)")
    ap.add_argument("--out", type=Path, help="write a Markdown table here")
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.messages, args.idle))
        return
    data = args.data or Path(tempfile.mkdtemp(prefix="rmail-bench-")) / "data"
    filled = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(data), "--messages",
                             str(args.messages), "--idle", str(args.idle)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ports = json.loads(proc.stdout.readline())
        print(f"server ready ({time.perf_counter() - filled:.1f} s incl. filling)", flush=True)
        results = asyncio.run(client(ports, args))
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=30)
    lines = ["| measurement | result | target |", "|---|---|---|"]
    for name, value in results.items():
        target = TARGETS.get(name, "< 50 KiB" if "memory" in name else "≤ 1 s")
        lines.append(f"| {name} | {value:.1f} | {target} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
