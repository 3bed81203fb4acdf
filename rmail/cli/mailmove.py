"""``import maildir|mbox`` and ``export maildir|mbox`` (docs/OPERATIONS.md "Moving mail in and out").

They work on the store directly, like the other admin commands; a running server notices
the new mail within a second.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rmail.server.core.mailmove import export_maildir, export_mbox, import_maildir, import_mbox

from .common import AdminContext, fail, run_admin
from .progress import Progress


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    imp = sub.add_parser("import", parents=[common], help="bring mail in from a Maildir++ tree or an mbox file")
    ims = imp.add_subparsers(dest="format", metavar="FORMAT", required=True)
    p = ims.add_parser("maildir", parents=[common], help="a Maildir++ tree as Dovecot writes it (INBOX and .Folders)")
    p.add_argument("user")
    p.add_argument("path", type=Path)
    p.set_defaults(func=lambda a: run_admin(a, lambda c: do_import(c, a)))
    p = ims.add_parser("mbox", parents=[common], help="an mbox file (mboxrd or mboxo)")
    p.add_argument("user")
    p.add_argument("file", type=Path)
    p.add_argument("--mailbox", default="INBOX", metavar="NAME", help="the mailbox to import into (default INBOX)")
    p.set_defaults(func=lambda a: run_admin(a, lambda c: do_import(c, a)))

    exp = sub.add_parser("export", parents=[common], help="take a user's mail out as Maildir++ or mbox")
    exs = exp.add_subparsers(dest="format", metavar="FORMAT", required=True)
    p = exs.add_parser("maildir", parents=[common], help="every mailbox as a Maildir++ tree in a new directory")
    p.add_argument("user")
    p.add_argument("path", type=Path)
    p.set_defaults(func=lambda a: run_admin(a, lambda c: do_export(c, a)))
    p = exs.add_parser("mbox", parents=[common], help="one mailbox as an mboxrd file")
    p.add_argument("user")
    p.add_argument("mailbox")
    p.add_argument("file", type=Path)
    p.set_defaults(func=lambda a: run_admin(a, lambda c: do_export(c, a)))


async def do_import(ctx: AdminContext, args: argparse.Namespace) -> int:
    account = await ctx.accounts.get_user(args.user)
    progress = Progress()
    try:
        if args.format == "maildir":
            result = await import_maildir(ctx.store, account, args.path.expanduser(), progress.update)
        else:
            result = await import_mbox(ctx.store, account, args.file.expanduser(), args.mailbox, progress.update)
    except OSError as exc:
        progress.clear()
        return fail(f"{exc.filename or 'file'}: {exc.strerror or exc}")
    finally:
        progress.clear()
    print(result.summary())
    return 0


async def do_export(ctx: AdminContext, args: argparse.Namespace) -> int:
    account = await ctx.accounts.get_user(args.user)
    progress = Progress()
    try:
        if args.format == "maildir":
            result = await export_maildir(ctx.store, account, args.path.expanduser(), progress.update)
        else:
            result = await export_mbox(ctx.store, account, args.mailbox, args.file.expanduser(), progress.update)
    except OSError as exc:
        progress.clear()
        return fail(f"{exc.filename or 'file'}: {exc.strerror or exc}")
    finally:
        progress.clear()
    print(result.summary())
    return 0
