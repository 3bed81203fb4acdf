"""GET /folders: the caller's mailboxes with counts, special-use and hierarchy."""

from __future__ import annotations

from aiohttp import web

from .auth import principal
from .context import runtime

DELIMITER = "/"


async def list_folders(request: web.Request) -> web.Response:
    who = principal(request)
    rows = await runtime(request).views.folders(who)
    return web.json_response({"delimiter": DELIMITER, "folders": [
        {"name": f.name, "messages": f.messages, "unseen": f.unseen, "special_use": f.special_use,
         "parent": f.name.rpartition(DELIMITER)[0] or None, "selectable": f.selectable,
         "subscribed": f.subscribed, "size": f.size, "uidvalidity": f.uidvalidity, "uidnext": f.uidnext}
        for f in rows]})
