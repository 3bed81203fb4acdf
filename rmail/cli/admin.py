"""``user``, ``domain`` and ``alias`` sub-commands (SPEC Part 1 Aliases, Part 3 Users)."""

from __future__ import annotations

import argparse
import getpass
import sys

from rmail.server.core.errors import InvalidInput
from rmail.server.core.quota import UNLIMITED, format_size, parse_size

from .common import AdminContext, fail, run_admin


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    user = sub.add_parser("user", parents=[common], help="add, list, change or remove users")
    us = user.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = us.add_parser("add", parents=[common], help="add a user (creates the domain with its first user)")
    p.add_argument("email")
    p.add_argument("--password", help="the password (prompted for when omitted)")
    p.add_argument("--admin", action="store_true", help="may manage the domain's aliases over the API")
    p.set_defaults(func=lambda a: run_admin(a, lambda c: user_add(c, a)))
    p = us.add_parser("list", parents=[common], help="list users")
    p.add_argument("domain", nargs="?")
    p.set_defaults(func=lambda a: run_admin(a, lambda c: user_list(c, a)))
    p = us.add_parser("passwd", parents=[common], help="change a user's password")
    p.add_argument("email")
    p.add_argument("--password", help="the new password (prompted for when omitted)")
    p.set_defaults(func=lambda a: run_admin(a, lambda c: user_passwd(c, a)))
    p = us.add_parser("remove", parents=[common], help="remove a user and all its mail")
    p.add_argument("email")
    p.set_defaults(func=lambda a: run_admin(a, lambda c: user_remove(c, a)))
    p = us.add_parser("quota", parents=[common], help="show or set a user's storage quota",
                      description="Without SIZE: show usage and limit. SIZE: bytes or 500M, 2G (binary units);"
                                  " 0 or unlimited: no limit for this user; none: back to [limits] quota.")
    p.add_argument("email")
    p.add_argument("size", nargs="?", metavar="SIZE|unlimited|none")
    p.set_defaults(func=lambda a: run_admin(a, lambda c: user_quota(c, a)))
    p = us.add_parser("admin", parents=[common], help="grant or revoke admin rights")
    p.add_argument("email")
    p.add_argument("state", choices=("on", "off"))
    p.set_defaults(func=lambda a: run_admin(a, lambda c: user_admin(c, a)))

    domain = sub.add_parser("domain", parents=[common], help="list, add or remove local domains")
    ds = domain.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = ds.add_parser("list", parents=[common], help="list local domains")
    p.set_defaults(func=lambda a: run_admin(a, domain_list))
    p = ds.add_parser("add", parents=[common], help="make a domain local before it has users")
    p.add_argument("domain")
    p.set_defaults(func=lambda a: run_admin(a, lambda c: domain_add(c, a)))
    p = ds.add_parser("remove", parents=[common], help="remove a domain without users")
    p.add_argument("domain")
    p.set_defaults(func=lambda a: run_admin(a, lambda c: domain_remove(c, a)))

    alias = sub.add_parser("alias", parents=[common], help="per-domain regex alias rules")
    als = alias.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = als.add_parser("list", parents=[common], help="list a domain's rules in declaration order")
    p.add_argument("domain")
    p.set_defaults(func=lambda a: run_admin(a, lambda c: alias_list(c, a)))
    p = als.add_parser("add", parents=[common], help="append a rule: PATTERN (full match on the local part) → TARGET user")
    p.add_argument("domain")
    p.add_argument("pattern")
    p.add_argument("target", help="an existing user of the domain (local part or address)")
    p.set_defaults(func=lambda a: run_admin(a, lambda c: alias_add(c, a)))
    p = als.add_parser("remove", parents=[common], help="remove a rule")
    p.add_argument("domain")
    p.add_argument("pattern")
    p.set_defaults(func=lambda a: run_admin(a, lambda c: alias_remove(c, a)))
    p = als.add_parser("move", parents=[common], help="move a rule to POSITION (1 = first)")
    p.add_argument("domain")
    p.add_argument("pattern")
    p.add_argument("position", type=int)
    p.set_defaults(func=lambda a: run_admin(a, lambda c: alias_move(c, a)))
    p = als.add_parser("resolve", parents=[common], help="dry run: where would LOCALPART@DOMAIN go?")
    p.add_argument("domain")
    p.add_argument("localpart")
    p.set_defaults(func=lambda a: run_admin(a, lambda c: alias_resolve(c, a)))


def read_password(given: str | None, *, confirm: bool = True) -> str:
    """The --password value, else a prompt (twice) on a terminal, else one line of stdin."""
    if given is not None:
        return given
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise InvalidInput("no password given (use --password or type it on standard input)")
        return line.rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Password again: ") != first:
        raise InvalidInput("the passwords do not match")
    return first


async def user_add(ctx: AdminContext, args: argparse.Namespace) -> int:
    password = read_password(args.password)
    domain = args.email.rpartition("@")[2]
    new_domain = not await ctx.accounts.is_local_domain(domain.lower())
    account = await ctx.accounts.add_user(args.email, password, admin=args.admin)
    print(f"added user {account.address}{' (admin)' if account.admin else ''}")
    if new_domain:
        await dkim_keys_for(ctx, account.domain)
    return 0


async def dkim_keys_for(ctx: AdminContext, domain: str) -> None:
    """A new domain gets its DKIM keys at once, so its records can be published before the
    first message is sent (see ``run.py dns DOMAIN``)."""
    from .dkim import make_keys
    await make_keys(ctx, domain)


async def user_list(ctx: AdminContext, args: argparse.Namespace) -> int:
    limits = await ctx.quotas.limits()
    for usage in await ctx.accounts.usage():
        account = usage.account
        if args.domain and account.domain != args.domain.lower():
            continue
        limit, _ = limits.get(account.id, (ctx.quotas.default, False))
        quota = "unlimited" if limit == UNLIMITED else f"{format_size(limit)} ({usage.size * 100 // limit}%)"
        print(f"{account.address}\t{'admin' if account.admin else 'user'}\t{usage.messages} messages\t"
              f"{usage.size} bytes\tquota {quota}")
    return 0


async def user_quota(ctx: AdminContext, args: argparse.Namespace) -> int:
    account = await ctx.accounts.get_user(args.email)
    if args.size is not None:
        word = args.size.strip().lower()
        limit = None if word == "none" else UNLIMITED if word == "unlimited" else parse_size(args.size)
        await ctx.quotas.set(account, limit)
    state = await ctx.quotas.state(account.id)
    print(f"{account.address}: {state.describe()}")
    return 0


async def user_passwd(ctx: AdminContext, args: argparse.Namespace) -> int:
    await ctx.accounts.get_user(args.email)
    await ctx.accounts.set_password(args.email, read_password(args.password))
    print(f"password changed for {args.email}")
    return 0


async def user_remove(ctx: AdminContext, args: argparse.Namespace) -> int:
    await ctx.accounts.remove_user(args.email)
    print(f"removed user {args.email}")
    return 0


async def user_admin(ctx: AdminContext, args: argparse.Namespace) -> int:
    account = await ctx.accounts.set_admin(args.email, args.state == "on")
    print(f"{account.address} is {'now' if account.admin else 'no longer'} an admin")
    return 0


async def domain_list(ctx: AdminContext) -> int:
    for name, users in await ctx.accounts.list_domains():
        print(f"{name}\t{users} user{'s' if users != 1 else ''}")
    return 0


async def domain_add(ctx: AdminContext, args: argparse.Namespace) -> int:
    name = await ctx.accounts.add_domain(args.domain)
    print(f"added domain {name}")
    await dkim_keys_for(ctx, name)
    return 0


async def domain_remove(ctx: AdminContext, args: argparse.Namespace) -> int:
    await ctx.accounts.remove_domain(args.domain)
    print(f"removed domain {args.domain.lower()}")
    return 0


async def alias_list(ctx: AdminContext, args: argparse.Namespace) -> int:
    rules = await ctx.aliases.list(args.domain)
    if not rules:
        print(f"no alias rules in {args.domain.lower()}")
    for rule in rules:
        print(f"{rule.position}\t{rule.pattern}\t→ {rule.target}@{rule.domain}")
    return 0


async def alias_add(ctx: AdminContext, args: argparse.Namespace) -> int:
    rule = await ctx.aliases.add(args.domain, args.pattern, args.target)
    print(f"added alias #{rule.position} {rule.pattern!r} → {rule.target}@{rule.domain}")
    return 0


async def alias_remove(ctx: AdminContext, args: argparse.Namespace) -> int:
    await ctx.aliases.remove(args.domain, args.pattern)
    print(f"removed alias {args.pattern!r} from {args.domain.lower()}")
    return 0


async def alias_move(ctx: AdminContext, args: argparse.Namespace) -> int:
    for rule in await ctx.aliases.move(args.domain, args.pattern, args.position):
        print(f"{rule.position}\t{rule.pattern}\t→ {rule.target}@{rule.domain}")
    return 0


async def alias_resolve(ctx: AdminContext, args: argparse.Namespace) -> int:
    resolution = await ctx.aliases.resolve(f"{args.localpart}@{args.domain}")
    print(resolution.describe())
    return 0 if resolution.account is not None else 1
