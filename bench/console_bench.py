"""Console overhead: SMTP throughput with the console attached vs headless, and key-press
latency while the server is under load.

    .venv/bin/python bench/console_bench.py [--seconds 10] [--imap 500] [--sessions 8]
                                            [--rate 300] [--write FILE]

The server runs in this process (the console embeds it in its own loop, so it must); the load
runs in a child process: ``--imap`` IMAP sessions log in, SELECT INBOX and IDLE (they get an
EXISTS for every delivery to their user), then ``--sessions`` SMTP connections send one-recipient
messages to ten local users, paced to ``--rate`` messages/s in total (0 = as fast as possible).
A message counts once its 250 after DATA arrived (durable).

Runs: headless (``ServerRuntime`` alone) and console (``ConsoleApp`` on Textual's headless
driver at 100x30, which composes and renders every frame as on a terminal). During the console
run a key is pressed every 0.25 s (tab switches, which lay out, reload and repaint a pane) and
the time until the app has handled it and painted the next frame is recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

USERS = [f"user{i}@bench.example" for i in range(10)]
#: Users the IMAP sessions log in as with ``--idle-on others``: connected, but no load mail.
IDLE_USERS = [f"idle{i}@bench.example" for i in range(10)]
PASSWORD = "bench-password"
#: IMAP sessions opened at once.
IMAP_WAVE = 50
#: Tab switches: each one shows another pane (layout, a reload, a full repaint), the heaviest key.
KEYS = (("3", "users"), ("4", "aliases"), ("5", "log"), ("2", "queue"), ("1", "connections"))


# -- the load (child process) ------------------------------------------------------------------------

async def imap_session(port: int, user: str, ready: asyncio.Event, stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    await reader.readline()
    for tag, command in ((b"a", f'LOGIN {user} "{PASSWORD}"'.encode()), (b"b", b"SELECT INBOX")):
        writer.write(tag + b" " + command + b"\r\n")
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError(f"IMAP server closed the session during {command[:6]!r}")
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise ConnectionError(f"IMAP {command[:6]!r} failed: {line!r}")
                break
    writer.write(b"c IDLE\r\n")
    await reader.readline()                        # "+ idling"
    ready.set()

    async def drain() -> None:                     # EXISTS / RECENT as deliveries land
        while await reader.readline():
            pass
    task = asyncio.create_task(drain())
    await stop.wait()
    task.cancel()
    writer.close()


async def smtp_sender(port: int, index: int, deadline: float, interval: float, sent: list[int]) -> None:
    import aiosmtplib
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30)
    await client.connect()
    body = (b"x" * 70 + b"\r\n") * 21          # 1.5 KB in RFC 5322 lines
    n = 0
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        rcpt = USERS[(index + n) % len(USERS)]
        message = (f"From: load@sender.example\r\nTo: {rcpt}\r\nSubject: bench {index}-{n}\r\n\r\n").encode() + body
        await client.sendmail("load@sender.example", [rcpt], message)
        n += 1
        sent[0] += 1
        if interval:
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    await client.quit()


async def run_load(smtp_port: int, imap_port: int, imap_sessions: int, sessions: int, seconds: float,
                   rate: float, idle_users: list[str]) -> dict:
    stop = asyncio.Event()
    idlers: list[asyncio.Task] = []
    # In waves: hundreds of simultaneous connects overflow the listen backlog and stall in SYN
    # retransmits, which measures the kernel, not rmail.
    for first in range(0, imap_sessions if imap_port else 0, IMAP_WAVE):
        readies = [asyncio.Event() for _ in range(first, min(first + IMAP_WAVE, imap_sessions))]
        idlers += [asyncio.create_task(imap_session(imap_port, idle_users[(first + i) % len(idle_users)], ready,
                                                    stop))
                   for i, ready in enumerate(readies)]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()                           # the parent says go
    sent = [0]
    start = time.monotonic()
    interval = sessions / rate if rate else 0.0
    await asyncio.gather(*(smtp_sender(smtp_port, i, start + seconds, interval, sent) for i in range(sessions)))
    elapsed = time.monotonic() - start
    stop.set()
    await asyncio.gather(*idlers, return_exceptions=True)
    return {"messages": sent[0], "seconds": elapsed, "rate": sent[0] / elapsed}


# -- the server (this process) -------------------------------------------------------------------------

def bench_dns():  # noqa: ANN201
    """The benchmark's loopback DNS server (bench/benchdns.py), started once."""
    global _DNS
    if _DNS is None:
        from benchdns import start_bench_dns
        _DNS = start_bench_dns()
    return _DNS


_DNS = None


def make_runtime(data_dir: Path, imap_sessions: int):  # noqa: ANN201
    from rmail.server.config import build_config
    from rmail.server.runtime import ServerRuntime
    config = build_config({"data_dir": str(data_dir), "bcrypt_rounds": 4, "hostname": "bench.example",
                           "dns": {"nameserver": bench_dns().address},
                           "ports": {k: 0 for k in ("smtp", "submission", "smtps", "imap", "imaps", "api")},
                           "limits": {"connections": imap_sessions + 200, "connections_per_ip": imap_sessions + 200,
                                      "preauth_connections": imap_sessions + 200,
                                      "connections_per_user": imap_sessions,
                                      # one client address sends hundreds of messages a second
                                      "smtp_connection_rate": 10**9, "smtp_message_rate": 10**9,
                                      "send_per_minute": 0}}, {}, is_root=True)
    return ServerRuntime(config, auth_delay=0)


async def seed(data_dir: Path, imap_sessions: int) -> None:
    async with make_runtime(data_dir, imap_sessions) as rt:
        for user in USERS + IDLE_USERS:
            await rt.accounts.add_user(user, PASSWORD)


async def drive_load(rt, args: argparse.Namespace, during=None) -> dict:  # noqa: ANN001
    """Start the load process against ``rt``, run ``during()`` alongside the send phase."""
    imap_port = rt.port("imap") if args.imap else 0
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--load", str(rt.port("smtp")), str(imap_port), str(args.imap),
        str(args.sessions), str(args.seconds), str(args.rate), args.idle_on,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdin and proc.stdout
    json.loads(await proc.stdout.readline())     # IMAP sessions are idling
    received_before = rt.counters.received
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()
    extra = await during() if during else None
    result = json.loads(await proc.stdout.readline())
    await proc.wait()
    result["server_received"] = rt.counters.received - received_before
    if extra is not None:
        result.update(extra)
    return result


async def headless(data_dir: Path, args: argparse.Namespace) -> dict:
    async with make_runtime(data_dir, args.imap) as rt:
        return await drive_load(rt, args)


async def with_console(data_dir: Path, args: argparse.Namespace, keys: bool = False) -> dict:
    from textual import events

    from rmail.tui.app import ConsoleApp
    from rmail.tui.widgets.pane import Pane
    app = ConsoleApp(lambda: make_runtime(data_dir, args.imap), first_run=False)
    latencies: list[float] = []
    by_tab: dict[str, list[float]] = {}
    reloads: list[int] = []

    async with app.run_test(size=(100, 30)) as pilot:
        rt = await app.wait_until_running()

        async def press(key: str, tab: str) -> float:
            """Milliseconds from the key arriving (as from the terminal) until its tab is shown
            and the next frame has been rendered. Pilot.press cannot measure this under load:
            it waits for the whole process to go idle."""
            painted = asyncio.Event()
            event = events.Key(key, key)
            event.set_sender(app)
            t0 = time.perf_counter()
            app._driver.send_message(event)  # noqa: SLF001 - the path real key presses take
            while app.tabs.active != tab:
                await asyncio.sleep(0.001)
            app.call_after_refresh(painted.set)
            await painted.wait()
            return (time.perf_counter() - t0) * 1000

        async def press_keys() -> dict:
            end = time.monotonic() + args.seconds
            i = 0
            while time.monotonic() < end:
                key, tab = KEYS[i % len(KEYS)]
                latencies.append(await press(key, tab))
                by_tab.setdefault(tab, []).append(round(latencies[-1]))
                i += 1
                await asyncio.sleep(args.key_interval)
            reloads.append(sum(p.loads for p in app.query(Pane)))
            return {}

        async def watch() -> dict:
            await asyncio.sleep(args.seconds)
            reloads.append(sum(p.loads for p in app.query(Pane)))
            return {}

        result = await drive_load(rt, args, press_keys if keys else watch)
        await pilot.press("q")
    result["pane_reloads"] = reloads[0] if reloads else 0
    if latencies:
        result["keys"] = len(latencies)
        result["key_ms_median"] = statistics.median(latencies)
        result["key_ms_p95"] = sorted(latencies)[max(0, int(len(latencies) * 0.95) - 1)]
        result["key_ms_max"] = max(latencies)
        result["key_ms_by_tab"] = by_tab
    return result


def report(args: argparse.Namespace, plain: dict, console: dict, typing: dict) -> str:
    rate = f"{args.rate:g} msg/s offered" if args.rate else "unpaced (as fast as possible)"

    def pct(run: dict) -> str:
        return f"{run['rate'] / plain['rate'] * 100:.0f}%" if plain["rate"] else "-"
    return "\n".join([
        "# Console benchmarks",
        "",
        "Written by `bench/console_bench.py`; one run on a shared 2-CPU machine (other work was running),",
        "so treat differences of a few percent as noise. The server and the console share one process",
        "and one event loop; the load generator is a separate process on the same CPUs.",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}",
        f"- load: {args.imap} IMAP sessions logged in and IDLE (on the INBOXes of {args.idle_on}); "
        f"{args.sessions} SMTP connections, "
        f"{rate}, for {args.seconds:g} s; one recipient per message (1.6 KB), ten local users",
        "",
        "| run | messages | msg/s | vs headless | key press median | p95 | max |",
        "|---|---|---|---|---|---|---|",
        f"| headless (the `run.py serve` runtime) | {plain['messages']} | {plain['rate']:.1f} | 100% | – | – | – |",
        f"| console attached, nobody typing | {console['messages']} | {console['rate']:.1f} | {pct(console)} "
        "| – | – | – |",
        f"| console attached, a tab switch every {args.key_interval:g} s | {typing['messages']} | "
        f"{typing['rate']:.1f} | {pct(typing)} | {typing['key_ms_median']:.0f} ms | {typing['key_ms_p95']:.0f} ms "
        f"| {typing['key_ms_max']:.0f} ms |",
        "",
        "Key latency is measured from the key event entering the app (as from the terminal driver) until",
        "the new tab is active and the next frame has been rendered; a tab switch is the heaviest key",
        "(layout, CSS of the new pane, a reload, a full repaint).",
        f"Panes reloaded {console['pane_reloads']} times during the idle console run: events only mark",
        "panes dirty, and only the visible pane reloads, at most a few times a second.",
        "",
    ])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        smtp_port, imap_port, imap_n, sessions = (int(v) for v in sys.argv[2:6])
        seconds, rate = float(sys.argv[6]), float(sys.argv[7])
        idle_users = USERS if sys.argv[8] == "recipients" else IDLE_USERS
        print(json.dumps(asyncio.run(run_load(smtp_port, imap_port, imap_n, sessions, seconds, rate, idle_users))),
              flush=True)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--imap", type=int, default=500, help="idle IMAP sessions (0 = none)")
    parser.add_argument("--idle-on", choices=("others", "recipients"), default="others",
                        help="whose INBOX the IMAP sessions idle on: users that get no load mail (the issue's "
                             "'500 sessions connected'), or the load's recipients (every message then wakes "
                             "50 sessions)")
    parser.add_argument("--sessions", type=int, default=8, help="SMTP connections sending")
    parser.add_argument("--rate", type=float, default=300.0, help="messages/s offered in total (0 = unpaced)")
    parser.add_argument("--key-interval", type=float, default=1.0, help="seconds between key presses")
    parser.add_argument("--write", type=Path, help="write the Markdown report here")
    parser.add_argument("--keys-only", action="store_true",
                        help="only the console run with key presses (for profiling the UI)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rmail-console-bench-") as tmp:
        results = {}
        runs = (("headless", headless), ("console", with_console),
                ("typing", lambda d, a: with_console(d, a, keys=True)))
        if args.keys_only:
            runs = runs[2:]
        for name, run in runs:
            data_dir = Path(tmp) / name
            asyncio.run(seed(data_dir, args.imap))
            results[name] = asyncio.run(run(data_dir, args))
            print(name, json.dumps(results[name]), file=sys.stderr)
    if args.keys_only:
        return 0
    text = report(args, results["headless"], results["console"], results["typing"])
    print(text)
    if args.write:
        args.write.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
