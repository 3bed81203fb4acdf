"""The admin socket: how ``rmail console`` attaches to a server running headless.

Modules: ``protocol`` (the line-delimited JSON codec, sans-I/O), ``values`` (dataclasses to
JSON and back), ``api`` (the operations: name, arguments, result), ``service`` (what each
operation does to the runtime; the embedded console calls it directly), ``views`` (the values
it answers with), ``peer`` (SO_PEERCRED), ``firstrun`` (the wizard's certificate),
``listener`` (the socket and one session per console).

Invariants:

- The socket is ``DATA_DIR/rmail.sock``, mode 0600 from the moment it exists, inside the 0700
  data dir; a connecting process whose uid is not the server's is refused (SO_PEERCRED), root
  included. Only the server holding the data dir lock creates or removes it.
- Every request is checked against ``api.OPS`` before anything runs; a console gets answers
  and errors, never a traceback, and whatever it sends costs the server a bounded amount
  (listener.py lists the bounds). A failing console loses only its own connection.
- Events are hints to look again; the runtime's registry and the store hold the truth. A
  console that falls behind gets ``resync`` and reloads.
- Request arguments (passwords among them) are never logged.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from .listener import AdminServer, socket_path

if TYPE_CHECKING:
    from ..runtime import ServerRuntime

__all__ = ["AdminServer", "socket_path", "start"]

log = logging.getLogger("rmail.admin")


async def start(runtime: ServerRuntime, stack: contextlib.AsyncExitStack) -> None:
    """Listen on the data dir's admin socket (a runtime service, started last, stopped first).

    A socket that cannot be made (a data dir path too long for a Unix socket, a file in the
    way) is logged; the server runs on without it, and consoles cannot attach.
    """
    path = socket_path(runtime.config.data_dir)
    server = AdminServer(runtime)
    try:
        await server.start(path)
    except OSError as exc:
        log.warning("admin socket %s: cannot listen: %s; `rmail console` cannot attach to this server",
                    path, exc.strerror or exc)
        return
    stack.push_async_callback(server.close)
    runtime.admin = server
    log.info("admin socket %s (rmail console attaches here)", path)
