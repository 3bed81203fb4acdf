"""Run by test_crash.py in a subprocess: deliver messages concurrently and print one line per
acknowledged message ("ACK <uid> <sha256>") the moment the store returns. The test kills us."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path

from rmail.server.core.accounts import Accounts
from rmail.server.core.storage import MailStore
from tests.helpers.stores import open_sqlite


async def main(data_dir: Path, workers: int) -> None:
    store_backend = await open_sqlite(data_dir, recover=True)
    store = store_backend.mail
    accounts = Accounts(store_backend.directory, bcrypt_rounds=4)
    user = await accounts.find_user("crash@example.com") or await accounts.add_user("crash@example.com", "pw")
    inbox = (await store.get_mailbox(user.id, "INBOX")).id
    print("READY", flush=True)

    async def worker(n: int) -> None:
        i = 0
        while True:
            i += 1
            # Every tenth message is large enough to be kept as a file, not in the database.
            body = os.urandom(64).hex().encode() * (1 + (i % 40) + (1200 if i % 10 == 0 else 0))
            data = b"Subject: w%d m%d\r\n\r\n" % (n, i) + body + b"\r\n"
            uid = await store.append(inbox, data)
            sys.stdout.write(f"ACK {uid} {hashlib.sha256(data).hexdigest()}\n")
            sys.stdout.flush()

    await asyncio.gather(*(worker(n) for n in range(workers)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
