"""``dkim list|rotate|publish``: the DKIM key generations of a domain (core.dkimkeys).

Rotation is two steps because DNS is slow: ``rotate`` makes a pending generation whose
records ``run.py dns DOMAIN`` prints; once they are published, ``publish DOMAIN GENERATION``
makes it sign and retires the old one (keep the old records published a few days, for mail
still in transit).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from rmail.server.core.dkimkeys import Generation, KeyState
from rmail.server.core.mailauth.signing import NEVER_SIGN

from .common import AdminContext, run_admin


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("dkim", parents=[common], help="DKIM signing keys: list, rotate, publish")
    ds = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = ds.add_parser("list", parents=[common], help="a domain's key generations and their selectors")
    a.add_argument("domain")
    a.set_defaults(func=lambda args: run_admin(args, lambda c: dkim_list(c, args)))
    a = ds.add_parser("rotate", parents=[common],
                      help="make new keys (pending): signing stays with the current ones until publish")
    a.add_argument("domain")
    a.set_defaults(func=lambda args: run_admin(args, lambda c: dkim_rotate(c, args)))
    a = ds.add_parser("publish", parents=[common],
                      help="the pending generation's records are in DNS: sign with it from now on")
    a.add_argument("domain")
    a.add_argument("generation")
    a.set_defaults(func=lambda args: run_admin(args, lambda c: dkim_publish(c, args)))


def _when(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def _line(g: Generation) -> str:
    return f"{g.name}\t{g.state.value}\t{' '.join(g.selectors)}\tcreated {_when(g.created)}"


async def make_keys(ctx: AdminContext, domain: str) -> None:
    if domain.lower().endswith(NEVER_SIGN):
        return
    generations = await asyncio.to_thread(ctx.dkim.ensure, domain)
    active = [g for g in generations if g.state is KeyState.ACTIVE]
    print(f"DKIM keys for {domain}: selectors {' '.join(active[-1].selectors)}; "
          f"publish the records printed by: run.py dns {domain}")


async def dkim_list(ctx: AdminContext, args: argparse.Namespace) -> int:
    generations = await asyncio.to_thread(ctx.dkim.generations, args.domain)
    if not generations:
        print(f"{args.domain.lower()} has no DKIM keys yet (made on first use, or by: run.py dns {args.domain})")
        return 0
    for g in generations:
        print(_line(g))
    return 0


async def dkim_rotate(ctx: AdminContext, args: argparse.Namespace) -> int:
    new = await asyncio.to_thread(ctx.dkim.rotate, args.domain)
    print(_line(new))
    print(f"publish the records of {new.name} (run.py dns {args.domain}), wait for them to be visible, then run:")
    print(f"  run.py dkim publish {args.domain} {new.name}")
    return 0


async def dkim_publish(ctx: AdminContext, args: argparse.Namespace) -> int:
    await asyncio.to_thread(ctx.dkim.publish, args.domain, args.generation)
    for g in await asyncio.to_thread(ctx.dkim.generations, args.domain):
        print(_line(g))
    retired = [g for g in await asyncio.to_thread(ctx.dkim.generations, args.domain) if g.state is KeyState.RETIRED]
    if retired:
        print(f"signing with {args.generation}; keep the retired records published a few days for mail in transit")
    return 0
