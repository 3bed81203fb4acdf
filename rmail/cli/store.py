"""``store copy --to URL|DIR`` (docs/OPERATIONS.md "Moving between SQLite and PostgreSQL").

Copies the store the config uses (SQLite in data_dir, or PostgreSQL at [store] url) into a new,
empty one: a PostgreSQL database or a data dir. The source is read from one snapshot and never
written to, so the server may keep running; mail that arrives meanwhile is not in the copy.
The copy is checked afterwards: the target's counts and checksums must equal the snapshot's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path
from typing import AsyncIterator, Iterator

from rmail.server.config import Config, ConfigError
from rmail.server.core.errors import InvalidInput, RmailError
from rmail.server.core.dkimkeys import KeyStore
from rmail.server.core.storage import StoreLocation, open_key_store
from rmail.server.core.storage.transfer import Batch, Dump, Summary, open_transfer

from .common import config_from, fail
from .progress import Progress

_URL_SCHEMES = ("postgresql", "postgres")
MIB = 1024 * 1024


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("store", parents=[common], help="move the store between SQLite and PostgreSQL")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = actions.add_parser("copy", parents=[common],
                           help="copy the whole store into a new, empty one, verified by counts and checksums")
    c.add_argument("--to", required=True, metavar="URL|DIR",
                   help="a PostgreSQL URL (postgresql://user@host:port/db) or a directory for an embedded store")
    c.set_defaults(func=copy)


def target_location(text: str, config: Config) -> StoreLocation:
    """Raises: InvalidInput: a URL of another kind, or nothing at all."""
    if not text.strip():
        raise InvalidInput("--to needs a postgresql:// URL or a directory")
    scheme, sep, _ = text.partition("://")
    if sep:
        if scheme.lower() not in _URL_SCHEMES:
            raise InvalidInput(f"--to: {scheme}:// is not a store rmail knows; give a postgresql:// URL or a directory")
        return StoreLocation(config.data_dir, text)
    return StoreLocation(Path(text).expanduser().resolve())


def copy(args: argparse.Namespace) -> int:
    try:
        config = config_from(args)
    except ConfigError as exc:
        return fail(f"config: {exc}", 2)
    progress = Progress()
    try:
        target = target_location(args.to, config)
        return asyncio.run(_copy(config, target, progress))
    except RmailError as exc:
        progress.clear()
        return fail(str(exc))
    except OSError as exc:
        progress.clear()
        return fail(f"store copy failed: {exc.strerror or exc}")


class _Watch:
    """Passes a dump's batches on to the target, showing progress and counting message bytes."""

    def __init__(self, dump: Dump, progress: Progress) -> None:
        self.dump = dump
        self.progress = progress
        self.data_bytes = 0
        self.domains: list[str] = []     #: whose DKIM keys to carry across afterwards

    async def __aiter__(self) -> AsyncIterator[Batch]:
        totals = self.dump.totals
        done = dict.fromkeys(totals, 0)
        total = f"{self.dump.total_bytes / MIB:.1f}"
        async for batch in self.dump:
            done[batch.table] = done.get(batch.table, 0) + len(batch.rows)
            self.data_bytes += batch.data_bytes
            if batch.table == "domains":
                self.domains.extend(row.name for row in batch.rows)  # type: ignore[attr-defined]
            self.progress.update(f"copying {batch.table} ({self.data_bytes / MIB:.1f}/{total} MiB of messages)",
                                 done[batch.table], totals.get(batch.table))
            yield batch


@contextlib.contextmanager
def _target_lock(location: StoreLocation) -> Iterator[None]:
    """A data dir target is locked as a server locks it: a server starting on it meanwhile
    would remove the message files of the uncommitted copy as leftovers of a crash."""
    if location.url:
        yield
        return
    from rmail.server.runtime import data_dir_lock
    location.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(data_dir_lock(location.data_dir))
        except ConfigError:
            raise InvalidInput(f"an rmail server is running on {location.data_dir}; stop it first") from None
        yield


def _report(source: str, target: str, copied: Summary, total_bytes: int, notes: list[str]) -> None:
    print(f"copied {source} to {target}")
    for table, count in copied.counts.items():
        extra = f" ({total_bytes / MIB:.1f} MiB of messages)" if table == "blobs" else ""
        print(f"  {table:<10} {count}{extra}")
    for note in notes:
        print(f"  note: {note}")


async def _copy(config: Config, target_location: StoreLocation, progress: Progress) -> int:
    async with open_transfer(config.store_location, target=False) as source, \
            open_transfer(target_location, target=True) as target:
        if await source.identity() == await target.identity():
            raise InvalidInput(f"{target.describe()} is the store this config uses already; copy to another one")
        await target.check_empty()
        with _target_lock(target_location):
            async with source.dump() as dump:
                watch = _Watch(dump, progress)
                await target.load(watch)
                copied, notes = dump.summary(), dump.notes
            progress.update("verifying the copy")
            check = await target.summary()
            progress.update("copying DKIM keys")
            keys = await asyncio.to_thread(_copy_dkim_keys, config.store_location, target_location, watch.domains)
        progress.clear()
        _report(source.describe(), target.describe(), copied, watch.data_bytes, notes)
        differences = copied.differences(check)
        if differences:
            return fail("verification failed, the copy differs from the source: " + "; ".join(differences))
        print(f"DKIM keys: {keys} domain(s) carried across" if keys else "DKIM keys: none to carry across")
        print(f"checksum: sha256 {copied.digest}")
        print("verified: counts and checksums match")
        where = config.source or "rmail.toml"
        if target_location.url:
            print(f"next: point [store] url at this database in {where} and restart rmail")
        else:
            print(f"next: set data_dir = \"{target_location.data_dir}\" and remove [store] url in {where},"
                  " then restart rmail")
        return 0


def _copy_dkim_keys(source: StoreLocation, target: StoreLocation, domains: list[str]) -> int:
    """Carry every domain's DKIM key generations across (blocking): the published DNS records
    name these keys, so the target must sign with them, not make new ones. Returns how many
    domains had keys."""
    src, dst = open_key_store(source), open_key_store(target)
    try:
        copied = 0
        for domain in domains:
            generations = src.load(domain)
            if generations:
                dst.save(domain, generations)
                copied += 1
        return copied
    finally:
        for store in (src, dst):
            _close(store)


def _close(store: KeyStore) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        close()
