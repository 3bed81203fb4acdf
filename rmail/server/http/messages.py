"""/folders/{folder}/messages: list, read, append, re-flag and delete messages.

UIDs are IMAP UIDs of that folder (SPEC Part 3), so every change here is a store change that
IMAP sessions see through the event bus like any other.
"""

from __future__ import annotations

import asyncio
import json
import time
from functools import lru_cache
from typing import Any

from aiohttp import web

from rmail.server.core.errors import InvalidInput, NotFound
from rmail.server.core.mime import MessageView, message_view
from rmail.server.core.storage.flags import validate_flags

from rmail.server.core.storage.views import MessageRow, flag_list, ordered_flags

from .auth import principal
from .cache import ByteLRU
from .context import runtime
from .errors import ApiError
from .inputs import folder_name, get_str_list, path_uid, query_int, read_body, read_json

DEFAULT_LIMIT = 25
MAX_LIMIT = 500
#: RFC 3501 §2.3.2 flags plus keywords; the store caps keywords at 64 per message.
MAX_FLAGS = 100
RAW_TYPE = "message/rfc822"


@lru_cache(maxsize=16384)
def iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def entry(row: MessageRow) -> dict[str, Any]:
    return {"uid": row.uid, "flags": flag_list(row.mask, row.keywords), "size": row.size,
            "date": iso(row.date if row.date is not None else row.internaldate),
            "received": iso(row.internaldate), "from": row.from_, "to": row.to, "subject": row.subject,
            "preview": row.preview}


#: Rendered list pages, exact by (user, mailbox id, UIDVALIDITY, MODSEQ, offset, limit); one per
#: app, since ids and MODSEQs only mean something within one store. See cache.py.
PAGES: web.AppKey[ByteLRU[bytes]] = web.AppKey("pages")
#: Decoded views by blob id (blobs are immutable).
VIEWS: web.AppKey[ByteLRU[MessageView]] = web.AppKey("views")


def install_caches(app: web.Application) -> None:
    app[PAGES] = ByteLRU(max_bytes=16 * 1024 * 1024, max_entry=1024 * 1024)
    app[VIEWS] = ByteLRU(max_bytes=32 * 1024 * 1024, max_entry=2 * 1024 * 1024)


async def list_messages(request: web.Request) -> web.Response:
    who = principal(request)
    name = folder_name(request)
    offset = query_int(request, "offset", default=0, maximum=2**31 - 1)
    limit = query_int(request, "limit", default=DEFAULT_LIMIT, maximum=MAX_LIMIT)

    pages = request.app[PAGES]
    key, result = await runtime(request).views.page(who, name, offset, limit, pages.get)
    if isinstance(result, tuple):
        total, rows = result
        result = json.dumps({"total": total, "offset": offset, "limit": limit,
                             "messages": [entry(r) for r in rows]}).encode()
        pages.put(key, result, len(result))
    return web.Response(body=result, content_type="application/json")


def wants_raw(request: web.Request) -> bool:
    """``?format=raw`` or an Accept header naming message/rfc822 (RFC 9110 §12.5.1)."""
    fmt = request.query.get("format")
    if fmt is not None:
        if fmt not in ("raw", "json"):
            raise InvalidInput("format must be raw or json")
        return fmt == "raw"
    accept = request.headers.get("Accept", "")
    return any(part.split(";")[0].strip().lower() == RAW_TYPE for part in accept.split(","))


async def get_message(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    name, uid = folder_name(request), path_uid(request)
    rt = runtime(request)
    row = await rt.views.message(who, name, uid)
    raw = wants_raw(request)

    if raw:
        return web.Response(body=await rt.store.read_message(row.blob_id), content_type=RAW_TYPE)
    views = request.app[VIEWS]
    view = views.get(row.blob_id)
    if view is None:
        data = await rt.store.read_message(row.blob_id)
        view = await asyncio.to_thread(message_view, data)
        views.put(row.blob_id, view, row.size)
    out = entry(row)
    out.update({"cc": row.cc, "message_id": row.message_id,
                "headers": [{"name": k, "value": v} for k, v in view.headers],
                "text": view.text, "html": view.html,
                "attachments": [{"filename": a.filename, "content_type": a.content_type, "size": a.size}
                                for a in view.attachments]})
    return web.json_response(out)


async def append_message(request: web.Request) -> web.Response:
    who = principal(request)
    name = folder_name(request)
    if request.content_type != RAW_TYPE:
        raise ApiError(415, f"the body must be a raw message with Content-Type: {RAW_TYPE}")
    rt = runtime(request)
    box = await rt.views.mailbox_id(who, name)
    data = await read_body(request, rt.config.limits.message_size)
    if not data.strip():
        raise InvalidInput("the message is empty")
    await rt.quotas.check(await rt.accounts.get_user(who.address), len(data))  # 507 when full
    uid = await rt.store.append(box, data)
    return web.json_response({"uid": uid}, status=201,
                             headers={"Location": f"{request.path.rstrip('/')}/{uid}"})


async def set_flags(request: web.Request) -> web.Response:
    who = principal(request)
    name, uid = folder_name(request), path_uid(request)
    body = await read_json(request)
    if not isinstance(body.get("flags"), list):
        raise InvalidInput("flags must be a list of strings")
    flags = get_str_list(body, "flags", max_items=MAX_FLAGS, max_length=128)
    if any(f.lower() == "\\recent" for f in flags):
        raise InvalidInput("\\Recent is set by the server and cannot be stored (RFC 3501 §2.3.2)")
    validate_flags(flags)  # unknown system flags and bad keywords: 400 before any lookup
    rt = runtime(request)
    box = await rt.views.mailbox_id(who, name)
    metas = await rt.store.store_flags(box, [uid], "set", flags)
    if not metas:
        raise NotFound(f"no message with uid {uid} in {name}")
    return web.json_response({"uid": uid, "flags": ordered_flags(metas[0].flags)})


async def delete_message(request: web.Request) -> web.Response:
    who = principal(request)
    name, uid = folder_name(request), path_uid(request)
    rt = runtime(request)
    box = await rt.views.mailbox_id(who, name)
    if not await rt.store.delete_messages(box, [uid]):
        raise NotFound(f"no message with uid {uid} in {name}")
    return web.Response(status=204)
