"""/aliases: the token's domain's alias rules; changes are for that domain's admins.

Validation and errors are the core's, exactly as the CLI gets them: 400 for an invalid or
dangerous pattern or a target that is not an existing user, 404 for an unknown pattern,
409 for a duplicate.
"""

from __future__ import annotations

from aiohttp import web

from rmail.server.core.errors import PermissionDenied

from .auth import Principal, principal
from .context import runtime
from .inputs import check_text, get_str, read_json

MAX_PATTERN = 1024   #: the core refuses patterns over 256 characters with its own message


def rule_json(rule) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {"pattern": rule.pattern, "target": f"{rule.target}@{rule.domain}", "position": rule.position}


async def admin(request: web.Request) -> Principal:
    """The caller, if an admin now (the token's claim and the current account must agree)."""
    who = principal(request)
    account = await runtime(request).accounts.find_user(who.address) if who.admin else None
    if account is None or not account.admin:
        raise PermissionDenied("only an admin of this domain may change its aliases")
    return who


async def list_aliases(request: web.Request) -> web.Response:
    who = principal(request)
    rules = await runtime(request).aliases.list(who.domain)
    return web.json_response({"domain": who.domain, "aliases": [rule_json(r) for r in rules]})


async def add_alias(request: web.Request) -> web.Response:
    who = await admin(request)
    body = await read_json(request)
    pattern = get_str(body, "pattern", max_length=MAX_PATTERN) or ""
    target = get_str(body, "target", max_length=320, single_line=True) or ""
    rule = await runtime(request).aliases.add(who.domain, pattern, target)
    return web.json_response(rule_json(rule), status=201)


async def remove_alias(request: web.Request) -> web.Response:
    who = await admin(request)
    if "pattern" in request.match_info:
        pattern = check_text(request.match_info["pattern"], "pattern", max_length=MAX_PATTERN)
    else:
        pattern = get_str(await read_json(request), "pattern", max_length=MAX_PATTERN) or ""
    await runtime(request).aliases.remove(who.domain, pattern)
    return web.Response(status=204)
