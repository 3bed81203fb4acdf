"""Prometheus metrics of one runtime, for ``GET /metrics``.

Each runtime has its own ``CollectorRegistry`` (never the process-global one): tests run many
runtimes in one process, and two servers must not add up each other's numbers.

Two kinds of numbers:

- counters fed from the event bus the runtime already watches (``count``): messages received,
  delivered locally, queued for remote recipients, outbound attempts by outcome, failed logins;
  the store's commit latency comes straight from the writer thread (``Database.on_commit``);
- gauges read when scraped (``ScrapeCollector``): open sessions by protocol from the connection
  registry, queue depth and the age of its oldest entry (one indexed read, made by ``render``
  before the text is built, so the collector itself never touches the store), free disk space
  against the reserve.

``summary`` gives the same numbers as one ``MetricsSummary`` value (the console's Metrics pane,
local or over the admin socket), read from the very registry ``/metrics`` renders.
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .core.events import AuthFailed, Event, MessageReceived, OutboundAttempted

if TYPE_CHECKING:
    from .runtime import ServerRuntime

#: Protocols shown from the first scrape (zero until used), so a dashboard has its series.
PROTOCOLS = ("smtp", "submission", "imap", "api")
OUTCOMES = ("delivered", "deferred", "bounced")
#: Commit latency buckets (seconds): a group commit with fsync takes ~1-20 ms on an SSD;
#: the long tail shows a struggling disk.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class MetricsSummary:
    """The numbers of ``GET /metrics`` at one moment, for the console."""

    received: dict[str, int]            #: messages accepted, by protocol
    delivered_local: int                #: local recipients' copies stored
    queued_remote: int                  #: remote recipients queued
    outbound: dict[str, int]            #: outbound attempts, by outcome
    auth_failures: dict[str, int]       #: failed logins, by protocol
    sessions: dict[str, int]            #: open connections, by protocol
    queue_entries: int
    queue_oldest_age: float             #: seconds (0 when the queue is empty)
    commits: int                        #: durable store commits
    commit_seconds: float               #: their total time
    #: (upper bound in seconds, commits that took at most that long), the finite buckets.
    commit_buckets: tuple[tuple[float, int], ...] = ()
    storage_free: int | None = None     #: bytes free on the data dir's filesystem
    storage_reserve: int = 0

    def commit_quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding the ``q`` quantile of commit times; None
        without commits or beyond the last bucket."""
        if not self.commits:
            return None
        rank = q * self.commits
        for bound, count in self.commit_buckets:
            if count >= rank:
                return bound
        return None


class Metrics:
    """The registry of one runtime and the counters the event watcher feeds."""

    def __init__(self, runtime: ServerRuntime) -> None:
        self.runtime = runtime
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter("rmail_messages_received", "Messages accepted, by the protocol they came in by.",
                                ["protocol"], registry=r)
        self.delivered_local = Counter("rmail_messages_delivered_local",
                                       "Local recipients' copies stored (one per recipient).", registry=r)
        self.queued_remote = Counter("rmail_messages_queued_remote",
                                     "Remote recipients queued for outbound delivery.", registry=r)
        self.outbound = Counter("rmail_outbound_attempts", "Outbound delivery attempts by outcome.",
                                ["outcome"], registry=r)
        self.auth_failures = Counter("rmail_auth_failures", "Failed logins by protocol.", ["protocol"],
                                     registry=r)
        self.commit_seconds = Histogram("rmail_store_commit_seconds",
                                        "Durable store commits (blob fsyncs and COMMIT), seconds.",
                                        buckets=LATENCY_BUCKETS, registry=r)
        for protocol in PROTOCOLS:
            self.received.labels(protocol)
            self.auth_failures.labels(protocol)
        for outcome in OUTCOMES:
            self.outbound.labels(outcome)
        self.scrape = ScrapeCollector(runtime)
        r.register(self.scrape)

    def count(self, event: Event) -> None:
        """Feed one bus event (called by the runtime's event watcher)."""
        if isinstance(event, MessageReceived):
            self.received.labels(event.protocol).inc()
            self.delivered_local.inc(event.local_recipients)
            self.queued_remote.inc(event.remote_recipients)
        elif isinstance(event, OutboundAttempted):
            self.outbound.labels(event.outcome).inc()
        elif isinstance(event, AuthFailed):
            self.auth_failures.labels(event.protocol).inc()

    async def render(self) -> bytes:
        """The exposition text; reads the queue summary first (off the event loop)."""
        total, _, oldest = await self.runtime.backend.queue.age_summary(0)
        self.scrape.queue = (total, oldest)
        return generate_latest(self.registry)

    async def summary(self) -> MetricsSummary:
        """The same numbers as ``render``, as one value."""
        total, _, oldest = await self.runtime.backend.queue.age_summary(0)
        self.scrape.queue = (total, oldest)
        by_metric: dict[str, dict[str, float]] = collections.defaultdict(dict)
        buckets: list[tuple[float, int]] = []
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == "rmail_store_commit_seconds_bucket":
                    bound = float(sample.labels["le"])
                    if math.isfinite(bound):
                        buckets.append((bound, int(sample.value)))
                    continue
                label = next(iter(sample.labels.values()), "")
                by_metric[sample.name][label] = sample.value

        def labelled(name: str) -> dict[str, int]:
            return {k: int(v) for k, v in sorted(by_metric[name].items())}

        def single(name: str) -> float:
            return by_metric[name].get("", 0.0)
        space = self.runtime.store.space.state
        return MetricsSummary(
            received=labelled("rmail_messages_received_total"),
            delivered_local=int(single("rmail_messages_delivered_local_total")),
            queued_remote=int(single("rmail_messages_queued_remote_total")),
            outbound=labelled("rmail_outbound_attempts_total"),
            auth_failures=labelled("rmail_auth_failures_total"),
            sessions=labelled("rmail_sessions_open"),
            queue_entries=int(single("rmail_queue_entries")),
            queue_oldest_age=single("rmail_queue_oldest_age_seconds"),
            commits=int(single("rmail_store_commit_seconds_count")),
            commit_seconds=single("rmail_store_commit_seconds_sum"),
            commit_buckets=tuple(sorted(buckets)),
            storage_free=space.free if space is not None else None,
            storage_reserve=space.reserve if space is not None else 0)


class ScrapeCollector(Collector):
    """Gauges computed at scrape time from the runtime's live state."""

    def __init__(self, runtime: ServerRuntime) -> None:
        self.runtime = runtime
        self.queue: tuple[int, float | None] = (0, None)   #: set by Metrics.render before each scrape

    def collect(self) -> Iterator[Metric]:
        rt = self.runtime
        sessions = GaugeMetricFamily("rmail_sessions_open", "Open connections by protocol.", labels=["protocol"])
        by_protocol = collections.Counter(info.protocol for info in rt.connections.snapshot())
        for protocol in sorted(set(by_protocol) | set(PROTOCOLS)):
            sessions.add_metric([protocol], by_protocol.get(protocol, 0))
        yield sessions
        total, oldest = self.queue
        yield GaugeMetricFamily("rmail_queue_entries", "Outbound queue entries (one per remote recipient).",
                                value=total)
        yield GaugeMetricFamily("rmail_queue_oldest_age_seconds",
                                "Age of the oldest queue entry in seconds (0 when the queue is empty).",
                                value=max(0.0, time.time() - oldest) if oldest is not None else 0.0)
        space = rt.store.space.state
        if space is not None:
            yield GaugeMetricFamily("rmail_storage_free_bytes", "Bytes free for rmail on the data dir's filesystem.",
                                    value=space.free)
            yield GaugeMetricFamily("rmail_storage_reserve_bytes",
                                    "limits.min_free_space: below it new mail is refused (0: no reserve).",
                                    value=space.reserve)
            yield GaugeMetricFamily("rmail_storage_low", "1 while new mail is refused for want of space.",
                                    value=1 if space.low else 0)
