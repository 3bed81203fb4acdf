"""``backup FILE`` and ``restore FILE [--data-dir DIR]`` (docs/OPERATIONS.md "Backup and restore").

Backup works beside a running server: it only reads (the database through SQLite's online
backup API), so it needs no lock and the server goes on serving.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rmail.server.config import ConfigError
from rmail.server.core.sqlite.backup import create_backup, describe, restore_backup
from rmail.server.core.errors import RmailError

from .common import config_from, fail
from .progress import Progress


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("backup", parents=[common], help="write a consistent backup (tar.gz) while the server runs")
    p.add_argument("file", type=Path, help="the archive to create (refused if it exists)")
    p.set_defaults(func=backup)
    p = sub.add_parser("restore", parents=[common], help="restore a backup into a new or empty data dir")
    p.add_argument("file", type=Path)
    p.add_argument("--data-dir", type=Path, metavar="DIR",
                   help="where to restore (default: the config's data_dir); must be missing or empty")
    p.set_defaults(func=restore)


def backup(args: argparse.Namespace) -> int:
    try:
        config = config_from(args)
    except ConfigError as exc:
        return fail(f"config: {exc}", 2)
    if config.store.url:
        return fail("the store is in PostgreSQL ([store] url): back it up with pg_dump (docs/SCALING.md); "
                    "rmail backup copies an embedded store's data dir", 2)
    progress = Progress()
    try:
        manifest = create_backup(config.data_dir, args.file, config_file=config.source, progress=progress.update)
    except RmailError as exc:
        progress.clear()
        return fail(str(exc))
    except OSError as exc:
        progress.clear()
        return fail(f"backup failed: {exc.strerror or exc}")
    progress.clear()
    print(f"backup written to {args.file}: {describe(manifest)}")
    return 0


def restore(args: argparse.Namespace) -> int:
    if args.data_dir is not None:
        target = args.data_dir.expanduser().resolve()
    else:
        try:
            target = config_from(args).data_dir
        except ConfigError as exc:
            return fail(f"config: {exc}", 2)
    progress = Progress()
    try:
        manifest = restore_backup(args.file, target, progress=progress.update)
    except RmailError as exc:
        progress.clear()
        return fail(str(exc))
    except OSError as exc:
        progress.clear()
        return fail(f"restore failed: {exc.strerror or exc}")
    progress.clear()
    print(f"restored into {target}: {describe(manifest)}")
    if manifest.config:
        print(f"the backed-up config is in {target / 'restored-config'}; check its data_dir before using it",
              file=sys.stderr)
    return 0
