"""``python run.py [--config FILE] COMMAND``: the console (no command), the headless server, and
the admin commands. Admin commands work on the store directly; a running server notices within
a second (the store's external-change watch).

Each sub-command lives in its own module with ``register(subparsers, common)``; the module's
parser sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

#: Sub-command modules, in help order.
COMMANDS = ("serve", "console", "admin", "dkim", "dnsrecords", "queue", "backup", "store", "mailmove", "selftest", "diagnose")


def build_parser() -> argparse.ArgumentParser:
    # --config is accepted before or after the sub-command (SPEC Part 3).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="rmail.toml to use (default: $RMAIL_CONFIG, ./rmail.toml, then the user config dir)")
    parser = argparse.ArgumentParser(parents=[common],
                                     description="rmail: an all-in-one mail server. Without a command, starts the console.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"rmail.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"rmail.cli.{name}":
                raise
            continue
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "config"):
        args.config = None
    if args.command is None:
        from .console import run_console
        return run_console(args)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
