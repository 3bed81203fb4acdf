"""The aiohttp application: routes exactly as SPEC.md Part 1's table, plus /openapi.json."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import aliases, autoconfig, domains, folders, login, messages, openapi, ops, send
from .auth import TOKENS, TokenService
from .context import RUNTIME
from .cors import cors_middleware
from .errors import error_middleware
from .inputs import MAX_JSON_BODY
from .listener import request_middleware
from .send import json_limit

FOLDER = "/folders/{folder:.+}/messages"


def make_app(runtime: Any) -> web.Application:
    """The API for ``runtime``; usable with aiohttp's test client as well as AppRunner.

    The signing key is fetched (or created) from the store once, at start-up.
    """
    cfg = runtime.config
    app = web.Application(
        middlewares=[request_middleware, cors_middleware(cfg.api.cors_origins), error_middleware],
        # Our handlers read bodies with their own caps (inputs.read_body); this is the backstop.
        client_max_size=max(json_limit(cfg.limits.message_size), MAX_JSON_BODY),
    )
    app[RUNTIME] = runtime
    app[TOKENS] = TokenService(runtime.backend.directory.secret)
    messages.install_caches(app)

    async def load_key(app: web.Application) -> None:
        await app[TOKENS].load()

    app.on_startup.append(load_key)
    r = app.router
    r.add_post("/auth/login", login.login)
    r.add_get("/folders", folders.list_folders)
    r.add_get(FOLDER, messages.list_messages)
    r.add_post(FOLDER, messages.append_message)
    r.add_get(FOLDER + "/{uid}", messages.get_message)
    r.add_delete(FOLDER + "/{uid}", messages.delete_message)
    r.add_patch(FOLDER + "/{uid}/flags", messages.set_flags)
    r.add_post("/messages/send", send.send_message)
    r.add_get("/aliases", aliases.list_aliases)
    r.add_post("/aliases", aliases.add_alias)
    r.add_delete("/aliases", aliases.remove_alias)
    r.add_delete("/aliases/{pattern:.+}", aliases.remove_alias)
    r.add_get("/.well-known/autoconfig/mail/config-v1.1.xml", autoconfig.thunderbird)
    r.add_get("/mail/config-v1.1.xml", autoconfig.thunderbird)   # autoconfig.<domain> form
    r.add_post("/autodiscover/autodiscover.xml", autoconfig.outlook)
    r.add_post("/Autodiscover/Autodiscover.xml", autoconfig.outlook)  # Outlook's own spelling
    r.add_get("/domains/{domain}/dns", domains.dns_records)
    r.add_get("/.well-known/mta-sts.txt", domains.mta_sts)
    r.add_get("/openapi.json", openapi.serve)
    r.add_get("/metrics", ops.metrics)        # no token; [api] metrics_from decides (ops.py)
    r.add_get("/healthz", ops.healthz)
    return app
