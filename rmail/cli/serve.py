"""``serve``: the server without the console, stopped by SIGINT/SIGTERM. It logs to stderr, or
appends to ``[log] file``, as text or JSON lines (``[log] format``, see server/logformat.py).

SIGHUP re-reads the config file and reloads the TLS certificate and the keys that can change
live (``ServerRuntime.reload``); a config that no longer validates is reported and ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from rmail.server.config import UNPRIVILEGED_OFFSET, Config, ConfigError
from rmail.server.core.errors import RmailError
from rmail.server.logformat import file_handler, formatter
from rmail.server.reload import reload_from_file
from rmail.server.runtime import ServerRuntime

from .common import config_from, fail

log = logging.getLogger("rmail")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common],
                       help="run the server headless (logs to stderr, or to [log] file)")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.set_defaults(func=serve)


def port_notice(config: Config) -> str | None:
    if config.port_offset:
        return (f"rmail: not running as root (nor with CAP_NET_BIND_SERVICE), so default ports moved up by "
                f"{UNPRIVILEGED_OFFSET} "
                f"(SMTP {config.ports.smtp}, submission {config.ports.submission}, SMTPS {config.ports.smtps}, "
                f"IMAP {config.ports.imap}, IMAPS {config.ports.imaps}, API {config.ports.api})")
    return None


def serve(args: argparse.Namespace) -> int:
    try:
        config = config_from(args)
    except ConfigError as exc:
        return fail(f"config: {exc}", 2)
    notice = port_notice(config)
    if notice:
        print(notice, file=sys.stderr, flush=True)
    try:
        # [log] file takes the place of stderr (a service manager would otherwise keep two copies).
        handler: logging.Handler = (file_handler(config.log.file) if config.log.file is not None
                                    else logging.StreamHandler(sys.stderr))
    except OSError as exc:
        return fail(f"config: log.file: cannot open {config.log.file}: {exc.strerror or exc}", 2)
    handler.setFormatter(formatter(config.log.format))
    logging.basicConfig(level=args.log_level, handlers=[handler], force=True)
    try:
        asyncio.run(_serve(config, getattr(args, "config", None)))
    except ConfigError as exc:
        return fail(f"config: {exc}", 2)
    except (OSError, RmailError) as exc:
        return fail(f"cannot start: {exc}")
    return 0


async def _serve(config: Config, config_path: str | None = None) -> None:
    stop = asyncio.Event()
    hup = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Until the runtime is up a SIGHUP only sets the flag (its default action would end the process).
    loop.add_signal_handler(signal.SIGHUP, hup.set)
    async with ServerRuntime(config) as runtime:
        log.info("rmail serving as %s; data in %s", config.hostname, config.data_dir)
        reloader = asyncio.create_task(_reload_on_hup(runtime, hup, config_path), name="rmail-reload")
        try:
            await stop.wait()
        finally:
            reloader.cancel()
        log.info("shutting down: finishing in-flight work")
    log.info("stopped")


async def _reload_on_hup(runtime: ServerRuntime, hup: asyncio.Event, config_path: str | None) -> None:
    """One reload per SIGHUP; signals arriving during a reload make one more afterwards."""
    while True:
        await hup.wait()
        hup.clear()
        await reload_from_file(runtime, config_path)
