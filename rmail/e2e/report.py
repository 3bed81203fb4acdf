"""Diagnose results as values, and their two renderings (text lines, JSON). Pure code."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Callable

#: The eight phases, in the order they run (SPEC Part 1 "Tests and diagnostics").
PHASES = ("configuration", "user management", "backend storage", "SMTP protocol", "delivery verification",
          "IMAP protocol", "Exchange API", "cleanup")
PASS, WARN, FAIL = "pass", "warn", "fail"


@dataclass(frozen=True, slots=True)
class Check:
    phase: str
    name: str
    status: str                 #: PASS, WARN or FAIL
    reason: str                 #: one line: what was found
    fix: str | None = None      #: for WARN and FAIL: the config key, command or DNS record to change

    def line(self) -> str:
        text = f"  {self.status:4}  {self.name}: {self.reason}"
        return text + (f" — fix: {self.fix}" if self.fix else "")


@dataclass
class Report:
    """Collects checks; ``on_check`` (if set) sees each one as it is added, for live output."""

    checks: list[Check] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)     #: (phase, text): skipped work
    on_check: Callable[[Check], None] | None = None
    on_phase: Callable[[int, str], None] | None = None
    on_note: Callable[[str], None] | None = None

    def phase(self, name: str) -> None:
        if self.on_phase:
            self.on_phase(PHASES.index(name) + 1, name)

    def add(self, check: Check) -> None:
        if check.status != PASS and not check.fix:
            raise ValueError(f"a {check.status} needs a fix: {check.name}")
        self.checks.append(check)
        if self.on_check:
            self.on_check(check)

    def note(self, phase: str, text: str) -> None:
        self.notes.append((phase, text))
        if self.on_note:
            self.on_note(text)

    @property
    def failures(self) -> int:
        return sum(c.status == FAIL for c in self.checks)

    @property
    def warnings(self) -> int:
        return sum(c.status == WARN for c in self.checks)

    def summary(self) -> str:
        return f"diagnose: {len(self.checks)} checks, {self.failures} failures, {self.warnings} warnings"

    def to_json(self) -> str:
        return json.dumps({
            "checks": [asdict(c) for c in self.checks],
            "skipped": [{"phase": p, "reason": t} for p, t in self.notes],
            "checks_total": len(self.checks), "failures": self.failures, "warnings": self.warnings,
            "ok": self.failures == 0, "summary": self.summary(),
        }, indent=2)
