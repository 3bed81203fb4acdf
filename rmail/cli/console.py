"""``python run.py`` with no command: the Textual console with the server embedded."""

from __future__ import annotations

import argparse
import sys

from rmail.server.config import ConfigError

from .common import config_from, fail
from .serve import port_notice


def run_console(args: argparse.Namespace) -> int:
    try:
        config = config_from(args)
    except ConfigError as exc:
        return fail(f"config: {exc}", 2)
    if not sys.stdout.isatty():
        return fail("the console needs a terminal; use `python run.py serve` to run headless", 2)
    from rmail.tui.app import run_app
    return run_app(config, notice=port_notice(config))
