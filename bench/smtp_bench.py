"""SMTP delivery throughput: rmail on 25 and 587 (AUTH) against a bare aiosmtpd+fsync ceiling.

    .venv/bin/python bench/smtp_bench.py [--seconds 5] [--sessions 1,10,50] [--sizes 2,100]
                                         [--write FILE] [--backend sqlite|postgres]

``--backend postgres`` runs rmail on a throwaway PostgreSQL cluster on this machine with its
durable defaults (bench/benchpg.py) instead of the embedded SQLite store.

Each server runs in its own process (``run.py serve`` for rmail); this process is the client
for both, with the same code: one asyncio connection per session, MAIL/RCPT/DATA pipelined
(RFC 2920), one recipient per message, recipients rotating over ten local users. A message
counts once its 250 after DATA arrived, i.e. once it is durable.

The ceiling server is the least any durable Python SMTP path must do: aiosmtpd parses the
session and each message is written to its own file and fsynced (on a thread, so sessions
overlap) before 250.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchdns import dns_toml, start_bench_dns  # noqa: E402

USERS = [f"user{i}@bench.example" for i in range(10)]
#: Mail authentication on port 25 looks its records up here (bench/benchdns.py); started with
#: rmail, not in the ceiling server's process.
DNS = None
PASSWORD = "bench-password"


# -- the ceiling server (runs in a child process) ----------------------------------------------------

def run_ceiling(port: int, directory: str) -> None:
    from aiosmtpd.smtp import SMTP

    counter = iter(range(1 << 62))

    def write(data: bytes) -> None:
        path = os.path.join(directory, f"{next(counter)}.eml")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    class Handler:
        async def handle_DATA(self, server, session, envelope) -> str:
            await asyncio.to_thread(write, envelope.original_content)
            return "250 OK"

    async def main() -> None:
        import logging
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        loop = asyncio.get_running_loop()
        handler = Handler()
        server = await loop.create_server(lambda: SMTP(handler, enable_SMTPUTF8=True, loop=loop), "127.0.0.1", port)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()
    asyncio.run(main())


# -- the client ------------------------------------------------------------------------------------

def make_message(size: int, n: int) -> bytes:
    head = (f"From: sender@remote.example\r\nTo: {USERS[n % len(USERS)]}\r\nSubject: bench {n}\r\n"
            f"Message-ID: <{n}.{time.time_ns()}@bench>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n").encode()
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


class Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def reply(self) -> str:
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            if line[3:4] != b"-":
                return line.decode("ascii", "replace")

    async def expect(self, code: str) -> None:
        text = await self.reply()
        if not text.startswith(code):
            raise RuntimeError(f"expected {code}, got {text.strip()}")


async def session_loop(port: int, auth: str | None, size: int, stop_at: float, offset: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    s = Session(reader, writer)
    await s.expect("220")
    writer.write(b"EHLO bench.client\r\n")
    await s.expect("250")
    sender = "sender@remote.example"
    if auth:
        token = base64.b64encode(f"\0{auth}\0{PASSWORD}".encode()).decode()
        writer.write(f"AUTH PLAIN {token}\r\n".encode())
        await s.expect("235")
        sender = auth
    done = 0
    n = offset
    bodies = [make_message(size, offset + i) for i in range(len(USERS))]
    while time.perf_counter() < stop_at:
        rcpt = USERS[n % len(USERS)]
        # RFC 2920: MAIL, RCPT and DATA in one write; the body after 354.
        writer.write(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode())
        await s.expect("250")
        await s.expect("250")
        await s.expect("354")
        writer.write(bodies[n % len(bodies)] + b".\r\n")
        await s.expect("250")
        done += 1
        n += 1
    writer.write(b"QUIT\r\n")
    try:
        await s.reply()
    except ConnectionError:
        pass
    writer.close()
    return done


async def measure(port: int, sessions: int, size: int, seconds: float, auth: bool) -> float:
    start = time.perf_counter()
    stop_at = start + seconds
    counts = await asyncio.gather(*(session_loop(port, USERS[i % len(USERS)] if auth else None, size, stop_at,
                                                 i * 1000) for i in range(sessions)))
    elapsed = time.perf_counter() - start
    return sum(counts) / elapsed


# -- orchestration ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited during start-up")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def start_rmail(workdir: Path, url: str | None = None) -> tuple[subprocess.Popen, int, int]:
    from rmail.server.core.accounts import Accounts
    from rmail.server.core.storage import StoreLocation, open_backend

    global DNS
    DNS = DNS or start_bench_dns()
    data = workdir / "rmail-data"
    data.mkdir()
    smtp, submission = free_port(), free_port()
    config = workdir / "rmail.toml"
    config.write_text(f'data_dir = "{data}"\nbcrypt_rounds = 4\nhostname = "mail.bench.example"\n'
                      # One client address sends thousands of messages a second: no port-25 rates.
                      "[limits]\nconnections_per_ip = 1000\nsmtp_connection_rate = 1000000000\n"
                      "smtp_message_rate = 1000000000\nsend_per_minute = 0\n"
                      f"[ports]\nsmtp = {smtp}\nsubmission = {submission}\nsmtps = 0\nimap = 0\nimaps = 0\napi = 0\n"
                      + dns_toml(DNS) + (f'[store]\nurl = "{url}"\n' if url else ""))

    async def seed() -> None:
        backend = await open_backend(StoreLocation(data, url))
        accounts = Accounts(backend.directory, bcrypt_rounds=4)
        for user in USERS:
            await accounts.add_user(user, PASSWORD)
        await backend.close()
    asyncio.run(seed())
    proc = subprocess.Popen([sys.executable, "run.py", "serve", "--config", str(config), "--log-level", "WARNING"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(smtp, proc)
    wait_port(submission, proc)
    return proc, smtp, submission


def start_ceiling(workdir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    directory = workdir / "ceiling"
    directory.mkdir()
    proc = subprocess.Popen([sys.executable, __file__, "--ceiling-server", str(port), str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, port


@dataclass
class Row:
    target: str
    sessions: int
    size_kib: int
    rate: float


def render(rows: list[Row], seconds: float, sessions: list[int], sizes: list[int]) -> str:
    by = {(r.target, r.sessions, r.size_kib): r.rate for r in rows}
    out = ["# SMTP benchmarks", "",
           f"Measured {time.strftime('%Y-%m-%d')} with `bench/smtp_bench.py --seconds {seconds:g}` on "
           f"{platform.node() or 'this machine'} ({os.cpu_count()} CPUs, Python {platform.python_version()}, "
           f"{platform.system()} {platform.release()}). Messages per second acknowledged with 250 after DATA "
           "(durable); one recipient each; the Python client below is the same for every column and shares "
           "the CPUs with the server.", "",
           "| size | sessions | ceiling (aiosmtpd + fsync) | rmail port 25 | rmail 587 + AUTH | port 25 / ceiling |",
           "|---|---|---|---|---|---|"]
    for size in sizes:
        for n in sessions:
            ceiling = by.get(("ceiling", n, size), 0.0)
            p25 = by.get(("rmail-25", n, size), 0.0)
            p587 = by.get(("rmail-587", n, size), 0.0)
            ratio = f"{p25 / ceiling:.0%}" if ceiling else "-"
            out.append(f"| {size} KiB | {n} | {ceiling:.0f} | {p25:.0f} | {p587:.0f} | {ratio} |")
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per cell")
    parser.add_argument("--sessions", default="1,10,50")
    parser.add_argument("--sizes", default="2,100", help="message sizes in KiB")
    parser.add_argument("--write", metavar="FILE", help="also write the markdown table to FILE")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite", help="rmail's store")
    parser.add_argument("--ceiling-server", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ceiling_server:
        run_ceiling(int(args.ceiling_server[0]), args.ceiling_server[1])
        return 0
    sessions = [int(x) for x in args.sessions.split(",")]
    sizes = [int(x) for x in args.sizes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="rmail-smtp-bench-"))
    rows: list[Row] = []
    procs: list[subprocess.Popen] = []
    cluster = None
    try:
        url = None
        if args.backend == "postgres":
            from benchpg import start_bench_cluster
            cluster = start_bench_cluster()
            url = cluster.create_database()
        rmail, smtp, submission = start_rmail(workdir, url)
        procs.append(rmail)
        ceiling, ceiling_port = start_ceiling(workdir)
        procs.append(ceiling)
        for size in sizes:
            for n in sessions:
                # Interleave the targets so drift in machine load hits all of them alike.
                for target, port, auth in (("ceiling", ceiling_port, False), ("rmail-25", smtp, False),
                                           ("rmail-587", submission, True)):
                    rate = asyncio.run(measure(port, n, size * 1024, args.seconds, auth))
                    rows.append(Row(target, n, size, rate))
                    print(f"{target:10s} {size:4d} KiB {n:3d} sessions: {rate:8.1f} msg/s", flush=True)
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    table = f"rmail's store: {args.backend}\n\n" + render(rows, args.seconds, sessions, sizes)
    print()
    print(table)
    if args.write:
        Path(args.write).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
