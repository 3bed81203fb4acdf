"""``queue list|retry ID|delete ID``: the outbound queue, from the store directly.

A running server notices within a second (the store's external-change watch wakes its
scheduler), so ``retry`` takes effect at once.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone


from .common import AdminContext, run_admin


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    queue = sub.add_parser("queue", parents=[common], help="list, retry or delete outbound mail")
    qs = queue.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = qs.add_parser("list", parents=[common], help="list messages waiting for outbound delivery")
    p.set_defaults(func=lambda a: run_admin(a, queue_list))
    p = qs.add_parser("retry", parents=[common], help="try an entry again now")
    p.add_argument("id", type=int)
    p.set_defaults(func=lambda a: run_admin(a, lambda c: queue_retry(c, a)))
    p = qs.add_parser("delete", parents=[common], help="drop an entry without delivering it (no bounce)")
    p.add_argument("id", type=int)
    p.set_defaults(func=lambda a: run_admin(a, lambda c: queue_delete(c, a)))


def _when(moment: datetime, now: datetime) -> str:
    seconds = int((moment - now).total_seconds())
    if seconds <= 0:
        return "due now"
    if seconds < 3600:
        return f"in {seconds // 60}m{seconds % 60:02d}s"
    return f"in {seconds // 3600}h{seconds % 3600 // 60:02d}m"


async def queue_list(ctx: AdminContext) -> int:
    entries = await ctx.backend.queue.list()
    if not entries:
        print("the outbound queue is empty")
        return 0
    now = datetime.now(timezone.utc)
    print("ID\tFROM\tTO\tSIZE\tATTEMPTS\tNEXT\tQUEUED\tLAST ERROR")
    for e in entries:
        print(f"{e.id}\t{e.sender or '<>'}\t{e.recipient}\t{e.size}\t{e.attempts}\t{_when(e.next_attempt, now)}\t"
              f"{e.created:%Y-%m-%d %H:%M}\t{e.last_error or '-'}")
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")
    return 0


async def queue_retry(ctx: AdminContext, args: argparse.Namespace) -> int:
    await ctx.backend.queue.retry(args.id, time.time())
    print(f"queue entry {args.id} will be tried again now")
    return 0


async def queue_delete(ctx: AdminContext, args: argparse.Namespace) -> int:
    entry = await ctx.backend.queue.get(args.id)
    await ctx.backend.queue.delete(args.id)
    print(f"deleted queue entry {args.id} ({entry.sender or '<>'} → {entry.recipient})")
    return 0
