"""Metrics pane: the numbers ``GET /metrics`` serves (rmail/server/metrics.py), one row each:
messages in and out by outcome, sessions by protocol, the queue's depth and oldest entry,
failed logins, store commit latency, free space. Reloaded about once a second while shown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rmail.server.core.events import Event

from ..format import cell, size
from ..tables import Row
from .pane import Pane

if TYPE_CHECKING:
    from rmail.server.metrics import MetricsSummary

    from ..source import ConsoleRuntime


def by_label(counts: dict[str, int]) -> str:
    """``smtp 3 · imap 0``, labels in order; "-" when there are none."""
    return " · ".join(f"{label} {n}" for label, n in counts.items()) or "-"


def age(seconds: float) -> str:
    """A short age: 42s, 7m 03s, 5h 02m, 3d 04h."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def latency(seconds: float | None) -> str:
    if seconds is None:
        return "more"
    return f"{seconds * 1000:g} ms" if seconds < 1 else f"{seconds:g} s"


def metric_rows(m: MetricsSummary) -> dict[str, tuple[str, str, str]]:
    """Row key → (what, value, style): the pane's rows, pure for tests."""
    outcome = m.outbound.get("bounced", 0)
    if m.queue_entries:
        queue = f"{m.queue_entries} entr{'y' if m.queue_entries == 1 else 'ies'}, oldest {age(m.queue_oldest_age)}"
    else:
        queue = "empty"
    if m.commits:
        mean = m.commit_seconds / m.commits
        commits = (f"{m.commits}, mean {mean * 1000:.1f} ms, 50% ≤ {latency(m.commit_quantile(0.5))}, "
                   f"99% ≤ {latency(m.commit_quantile(0.99))}")
    else:
        commits = "none yet"
    rows = {
        "received": ("Messages received", by_label(m.received), ""),
        "delivered": ("Delivered locally", f"{m.delivered_local} (copies stored)", ""),
        "queued": ("Queued for remote", f"{m.queued_remote} (recipients)", ""),
        "outbound": ("Outbound attempts", by_label(m.outbound), "red" if outcome else ""),
        "sessions": ("Open sessions", by_label(m.sessions), ""),
        "queue": ("Outbound queue", queue, "yellow" if m.queue_oldest_age > 4 * 3600 else ""),
        "auth": ("Failed logins", by_label(m.auth_failures), ""),
        "commits": ("Store commits", commits, ""),
    }
    if m.storage_free is not None:
        reserve = f", reserve {size(m.storage_reserve)}" if m.storage_reserve else ""
        low = bool(m.storage_reserve) and m.storage_free < m.storage_reserve
        rows["storage"] = ("Free space", f"{size(m.storage_free)}{reserve}", "bold red" if low else "")
    return rows


class MetricsPane(Pane):
    COLUMNS = ("Metric", "Value")
    #: Counters move with every message; the app also marks the pane dirty once a second.
    MIN_INTERVAL = 1.0
    ORDERED = True
    EMPTY = "No metrics yet."

    def wants(self, event: Event) -> bool:
        return True

    async def load(self, runtime: ConsoleRuntime) -> dict[str, Row]:
        return {key: (cell(what), cell(value, style))
                for key, (what, value, style) in metric_rows(await runtime.metrics()).items()}
