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
"""

from __future__ import annotations

import collections
import time
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
