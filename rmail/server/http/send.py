"""POST /messages/send: compose, deliver (local users, or the outbound queue), file in Sent."""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import datetime, timezone

from aiohttp import web

from rmail.server.core.errors import InvalidInput, LimitExceeded, NotFound, RmailError
from rmail.server.core.model import SpecialUse

from .auth import principal
from .compose import build_message, parse_send_request
from .context import runtime
from .errors import ApiError
from .inputs import read_json

log = logging.getLogger("rmail.http")


def json_limit(message_size: int) -> int:
    """Attachments arrive base64 inside JSON: 4/3 of the message limit plus room for the rest."""
    return message_size * 4 // 3 + 64 * 1024


async def send_message(request: web.Request) -> web.Response:
    who = principal(request)
    rt = runtime(request)
    limit = rt.config.limits.message_size
    body = await read_json(request, json_limit(limit))
    req = parse_send_request(body, max_recipients=rt.config.limits.recipients, max_bytes=limit)
    # The same per-user limiter (keyed by address) as SMTP AUTH sessions: messages a minute.
    wait = rt.send_rate.take(who.address.lower())
    if wait:
        raise ApiError(429, f"sending rate exceeded ({rt.config.limits.send_per_minute} messages a minute);"
                       " try again later", {"Retry-After": str(math.ceil(wait))})
    data, message_id = await asyncio.to_thread(build_message, who.address, req,
                                               hostname=rt.config.hostname, now=datetime.now(timezone.utc))
    if len(data) > limit:
        raise LimitExceeded(f"the message is larger than {limit} bytes")
    sent = await rt.views.special_mailbox(who, SpecialUse.SENT.value)
    if sent is not None:
        # Refuse before sending rather than send and lose the Sent copy: 507 when it cannot fit.
        await rt.quotas.check(await rt.accounts.get_user(who.address), len(data))
    try:
        await rt.delivery.deliver(who.address, req.recipients, data, may_relay=True, protocol="api",
                                  sign_as=who.domain)
    except NotFound as exc:
        # An unknown local recipient is a mistake in the request, not a missing resource.
        raise InvalidInput(str(exc)) from None
    reply: dict[str, str] = {"message_id": message_id}
    # The mail has gone out: from here on a failure must not make the client send it again.
    if sent is None:
        log.info("http: %s has no \\Sent folder; sent message %s not filed", who.address, message_id)
        reply["warning"] = "sent, but there is no Sent folder to file a copy in"
    else:
        try:
            await rt.store.append(sent, data, ("\\Seen",))
        except RmailError as exc:
            log.warning("http: sent message %s of %s not filed in Sent: %s", message_id, who.address, exc)
            reply["warning"] = f"sent, but the copy could not be filed in Sent: {exc}"
    return web.json_response(reply, status=202)
