"""rmail's SMTP service: inbound on 25, submission on 587, SMTPS on 465, and the outbound queue.

aiosmtpd does the wire; rmail supplies the rules through handler hooks (``handler``), a thin
protocol subclass (``session``), per-port policies (``policy``) and the outbound SMTP client
the queue uses (``outbound``).

Invariants:

- 250 after DATA means durable: ``Delivery.deliver`` has returned, every local copy is
  committed and every remote recipient is queued (SPEC Part 3).
- The stored message is the client's bytes, dot-unstuffed, with one ``Received`` header
  prepended, and at local delivery a ``Return-Path`` above it (replacing any the message
  carried, RFC 5321 §4.4); nothing else changes.
- Port 25 is never an open relay: a remote RCPT without AUTH is refused (554 5.7.1).
  Submission (587, 465) requires AUTH before MAIL, and MAIL FROM must be the user's own
  address or an alias resolving to the user (5.7.1 otherwise).
- With TLS configured, AUTH is offered only under TLS (after STARTTLS on 25/587, at once on
  465); without TLS configured it is always offered (SPEC Part 1, "EHLO behaviour").
- A DATA line ends only at CRLF: bare LF or CR never ends a message (SMTP smuggling), and
  anything pipelined behind STARTTLS is discarded (RFC 3207 §4.2). A command line ends only
  at CRLF too: one with a bare LF or CR gets 500 5.5.2 and nothing of it runs.
- Every input is bounded: command lines (512 octets, aiosmtpd), text lines (1000 octets,
  RFC 5321 §4.5.3.1.6), message size (``limits.message_size``), recipients
  (``limits.recipients``), error replies per session, AUTH failures per session and per
  client address, connections per address, time to authenticate (587/465) and session time
  without AUTH (25), connections and MAILs per address per minute (25).
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from ..core.queue import OutboundQueue
from .mtasts import MtaSts
from .outbound import SMTPTransport
from .policy import INBOUND, SMTPS, SUBMISSION
from .service import SMTPService

if TYPE_CHECKING:
    from ..runtime import ServerRuntime

__all__ = ["start"]

log = logging.getLogger("rmail.smtp")


async def start(runtime: ServerRuntime, stack: contextlib.AsyncExitStack) -> None:
    """Start the outbound queue and the SMTP listeners; register their shutdown on ``stack``."""
    from ..runtime import Listener

    # aiosmtpd logs every connection and command at INFO on "mail.log"; rmail logs its own.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    cfg = runtime.config
    relay = cfg.relay
    # Every lookup through runtime.dns; recipient domains' MTA-STS policies honoured (RFC 8461).
    transport = SMTPTransport(relay, cfg.hostname, resolver=runtime.dns,
                              mta_sts=MtaSts(runtime.dns) if cfg.mta_sts.outbound else None)
    queue = OutboundQueue(runtime.store, runtime.backend.queue, runtime.aliases, runtime.bus, transport,
                          hostname=cfg.hostname, lifetime=relay.queue_lifetime_hours * 3600,
                          delay_notice=relay.delay_notice_hours * 3600)
    await queue.start()
    stack.push_async_callback(queue.stop)
    runtime.delivery.outbound = queue
    runtime.queue = queue  # type: ignore[attr-defined]  # the console's queue pane and tests

    service = SMTPService(runtime)
    # Pushed before binding: a port that fails to bind still closes the ones already open.
    stack.push_async_callback(service.stop)
    runtime.smtp = service  # type: ignore[attr-defined]
    for policy, port in ((INBOUND, cfg.ports.smtp), (SUBMISSION, cfg.ports.submission), (SMTPS, cfg.ports.smtps)):
        if policy.implicit_tls and runtime.tls is None:
            log.info("smtps: not listening on port %d: TLS is not configured", port)
            continue
        tls_mode = "implicit" if policy.implicit_tls else ("starttls" if runtime.tls is not None else "none")
        for host in cfg.listen:
            bound = await service.listen(policy, host, port, runtime.tls)
            runtime.add_listener(Listener(policy.protocol, host, bound, tls_mode))
