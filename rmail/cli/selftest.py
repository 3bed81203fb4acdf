"""``test``: the end-to-end suite (tests/e2e) run through pytest, one line per check.

The checks are the pytest tests in tests/e2e, the same ones ``make test`` runs, so there is one
copy of them. Without ``--target`` the suite starts its own throwaway server; with
``--target CONFIG`` it checks the running server that config describes, creating its test users
through the store and removing them afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rmail.server.config import ConfigError, load_config

from .common import fail

#: tests/e2e beside the rmail package (a source checkout; run.py lives there too).
E2E_DIR = Path(__file__).resolve().parents[2] / "tests" / "e2e"
#: Lines of a failure's traceback shown after the list of checks.
DETAIL_LINES = 25


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("test", parents=[common], help="run the end-to-end suite over real sockets")
    p.add_argument("--target", metavar="CONFIG",
                   help="check the running server this rmail.toml describes instead of a throwaway one")
    p.add_argument("-k", dest="keyword", metavar="EXPR", help="only checks whose name matches (pytest -k)")
    p.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failure")
    p.set_defaults(func=selftest)


def check_name(nodeid: str) -> str:
    """``tests/e2e/test_smtp.py::test_relay_refused[smtp]`` → ``smtp: relay refused [smtp]``."""
    path, _, func = nodeid.partition("::")
    area = Path(path).stem.removeprefix("test_")
    name, _, param = func.partition("[")
    text = name.removeprefix("test_").replace("_", " ")
    return f"{area}: {text}" + (f" [{param}" if param else "")


@dataclass(eq=False)      # pluggy keeps plugins in a set
class Reporter:
    """A pytest plugin that prints each check as it finishes and counts the outcomes."""

    out: TextIO
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def pytest_runtest_logreport(self, report: Any) -> None:
        name = check_name(report.nodeid)
        if report.when == "call" and report.passed:
            self.passed += 1
            self._line("pass", name)
        elif report.failed:
            self.failed += 1
            stage = "" if report.when == "call" else f" (in {report.when})"
            self._line("FAIL", name + stage, _reason(report))
            self.failures.append((name, report.longreprtext))
        elif report.skipped and report.when in ("setup", "call"):
            self.skipped += 1
            self._line("skip", name, _reason(report))

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.failed += 1
            self._line("FAIL", f"cannot load {report.nodeid or 'the suite'}", _reason(report))
            self.failures.append((report.nodeid, report.longreprtext))

    def _line(self, status: str, name: str, reason: str = "") -> None:
        print(f"{status:4}  {name}" + (f" — {reason}" if reason else ""), file=self.out, flush=True)

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed" + (f", {self.skipped} skipped" if self.skipped else "")


def _reason(report: Any) -> str:
    """One line: the assertion or error message of a failure, the reason of a skip."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):           # skips: (file, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(longrepr)
    first = text.strip().splitlines()[0] if text.strip() else "failed"
    return first[:200]


def selftest(args: argparse.Namespace) -> int:
    try:
        import pytest
    except ImportError:
        return fail("pytest is not installed (it is a test extra); fix: make install")
    if not E2E_DIR.is_dir():
        return fail(f"the end-to-end suite is not here ({E2E_DIR}); run from an rmail source checkout")
    env_changes: dict[str, str] = {}
    if args.target:
        try:
            # Resolved now, with the caller's environment, so the suite opens the same store.
            config = load_config(args.target)
        except ConfigError as exc:
            return fail(f"config: {exc}", 2)
        env_changes = {"RMAIL_E2E_TARGET": str(Path(args.target).resolve()),
                       "RMAIL_E2E_DATA_DIR": str(config.data_dir)}
        print(f"checking the running server described by {args.target}", flush=True)
    else:
        print("starting a throwaway rmail (free ports, temporary data dir, test certificate)", flush=True)

    pytest_args = [str(E2E_DIR), "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                   "--rootdir", str(E2E_DIR.parents[1])]
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    if args.exitfirst:
        pytest_args.append("-x")
    reporter = Reporter(sys.stdout)
    saved = {k: os.environ.get(k) for k in env_changes}
    os.environ.update(env_changes)
    try:
        # The reporter prints the checks; pytest's own terminal output (it stays loaded: assertion
        # messages need its writer) goes to a buffer nobody reads.
        with contextlib.redirect_stdout(io.StringIO()):
            code = pytest.main(pytest_args, plugins=[reporter])
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    for name, text in reporter.failures:
        lines = text.rstrip().splitlines()
        print(f"\n--- {name}", flush=True)
        print("\n".join(lines[-DETAIL_LINES:]), flush=True)
    if reporter.passed + reporter.failed == 0 and code != 0:
        print(f"pytest could not run the suite (exit status {int(code)})", flush=True)
        reporter.failed += 1
    print(reporter.summary(), flush=True)
    return 1 if reporter.failed or int(code) not in (0, 5) else 0
