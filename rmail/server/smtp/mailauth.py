"""Where port 25 meets core.mailauth: which sessions are checked, and what the handler does
with the verdict. Kept out of ``handler`` so the DATA and MAIL hooks carry one call each.

Only unauthenticated sessions on the inbound listener are checked (DESIGN: "mail from
authenticated submission is never checked against itself"): a user who logs in on port 25
is treated like submission.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.mailauth.inbound import Action
from ..core.mailauth.results import without_forged_results
from .policy import Policy

if TYPE_CHECKING:
    from ..runtime import ServerRuntime

__all__ = ["Checked", "inbound_checks", "blocklist_check"]

log = logging.getLogger("rmail.smtp")


@dataclass(frozen=True, slots=True)
class Checked:
    data: bytes                    #: the message to deliver (Authentication-Results on top)
    junk: bool = False             #: file in Junk (DMARC quarantine)
    refusal: str | None = None     #: reply to send instead of delivering


def _checked(policy: Policy, session: Any) -> bool:
    return not policy.submission and not policy.implicit_tls and not session.authenticated


async def inbound_checks(runtime: ServerRuntime, policy: Policy, session: Any, peer_ip: str, sender: str,
                         data: bytes, trace_length: int) -> Checked:
    """``data`` is the message with rmail's Received field (``trace_length`` bytes) on top;
    the checks see the message as the client sent it."""
    if not _checked(policy, session):
        return Checked(data)
    checker = runtime.inbound
    if not runtime.config.antispam.checks:
        # No verdicts of ours, but nobody may pass theirs off as ours either (RFC 8601 §5).
        return Checked(without_forged_results(data, checker.hostname))
    verdict = await checker.check(data[trace_length:], peer_ip=peer_ip, helo=session.host_name or "",
                                  mail_from=sender)
    if verdict.action is Action.REJECT:
        dmarc = verdict.dmarc
        log.info("smtp: refused mail from [%s] <%s>: DMARC %s for %s", peer_ip, sender,
                 dmarc.disposition if dmarc else "?", dmarc.from_domain if dmarc else "?")
        return Checked(data, refusal=verdict.reply)
    return Checked(checker.stamp(data, verdict), junk=verdict.junk)


async def blocklist_check(runtime: ServerRuntime, policy: Policy, session: Any, peer_ip: str) -> str | None:
    """The 554 reply for a port-25 client on one of ``[antispam] dnsbl``, else None."""
    if not _checked(policy, session):
        return None
    return await runtime.inbound.blocklisted(peer_ip)
