"""``serve``: the server without the console, stopped by SIGINT/SIGTERM. It logs to stderr, or
appends to ``[log] file``, as text or JSON lines (``[log] format``, see server/logformat.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from rmail.server.config import UNPRIVILEGED_OFFSET, Config, ConfigError
from rmail.server.core.errors import RmailError
from rmail.server.logformat import file_handler, formatter
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
        return (f"rmail: not running as root, so default ports moved up by {UNPRIVILEGED_OFFSET} "
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
        asyncio.run(_serve(config))
    except ConfigError as exc:
        return fail(f"config: {exc}", 2)
    except (OSError, RmailError) as exc:
        return fail(f"cannot start: {exc}")
    return 0


async def _serve(config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with ServerRuntime(config) as runtime:
        log.info("rmail serving as %s; data in %s", config.hostname, config.data_dir)
        await stop.wait()
        log.info("shutting down: finishing in-flight work")
    log.info("stopped")
