"""``diagnose``: check the configured, running server in eight phases (rmail.e2e.diagnose).

Each check prints as pass / warn / fail with a one-line reason and, for a warn or fail, the fix;
then ``diagnose: N checks, N failures, N warnings``. Exit status 0 only without failures.
"""

from __future__ import annotations

import argparse
import asyncio

from rmail.e2e.diagnose import diagnose
from rmail.e2e.report import Check, Report
from rmail.server.core.errors import RmailError


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("diagnose", parents=[common],
                       help="check config, storage and all protocols of the running server (8 phases)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = Report()
    if not args.json:
        report.on_phase = lambda n, name: print(f"[{n}/8] {name}", flush=True)
        report.on_check = lambda c: print(c.line(), flush=True)
        report.on_note = lambda text: print(f"  {text}", flush=True)
    try:
        asyncio.run(diagnose(args.config, report))
    except (RmailError, OSError) as exc:
        # Opening the store (every check catches its own errors; cleanup has run by now).
        report.add(Check("backend storage", "open store", "fail", str(exc),
                         "check that data_dir exists and is readable and writable by this user"))
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        report.add(Check("backend storage", "store", "fail", f"{type(exc).__name__}: {exc}",
                         "stop the server, back up data_dir, and run diagnose again"))
    if args.json:
        print(report.to_json())
    else:
        print(report.summary(), flush=True)
    return 1 if report.failures else 0
