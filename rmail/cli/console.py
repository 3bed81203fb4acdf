"""``python run.py`` with no command: the Textual console, with the server embedded, or
attached to the server already running on the data dir. ``console``: attach, always."""

from __future__ import annotations

import argparse
import sys

from rmail.server.config import ConfigError

from .common import config_from, fail
from .serve import port_notice


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("console", parents=[common],
                       help="attach the console to the server running on the data dir (rmail serve); "
                            "leaving it leaves the server running")
    p.set_defaults(func=attach_console)


def run_console(args: argparse.Namespace, *, attach: bool | None = None) -> int:
    """The console; ``attach`` as in ``rmail.tui.app.run_app`` (None: attach when a server runs)."""
    try:
        config = config_from(args)
    except ConfigError as exc:
        return fail(f"config: {exc}", 2)
    from rmail.server.admin import socket_path
    from rmail.tui.remote import unreachable
    problem = unreachable(socket_path(config.data_dir)) if attach else None
    if problem is not None:
        return fail(f"{problem}: start the server (`rmail serve`, or systemctl start rmail), or run "
                    "`rmail` alone for a console with the server inside")
    if not sys.stdout.isatty():
        return fail("the console needs a terminal; use `python run.py serve` to run headless", 2)
    from rmail.tui.app import run_app
    return run_app(config, notice=port_notice(config), attach=attach)


def attach_console(args: argparse.Namespace) -> int:
    return run_console(args, attach=True)
