"""Hypothesis drives the store with random operation sequences against a simple model and
checks the invariants: UIDs ascending and never reused, counts, flags, MODSEQ monotonic, and
no message bytes kept past their last reference. It runs against every backend."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition, rule,
                                 run_state_machine_as_test)

from rmail.server.core.accounts import Accounts
from rmail.server.core.storage import MailStore
from tests.helpers.stores import open_kind, stored_blobs

FLAGS = st.sets(st.sampled_from(["\\Seen", "\\Flagged", "\\Deleted", "\\Answered", "$work", "todo"]), max_size=3)
BOXES = ["INBOX", "Archive"]


class StoreMachine(RuleBasedStateMachine):
    kind = "sqlite"
    cluster: Any = None       #: the PostgreSQL test cluster, for kind "postgres"

    @initialize()
    def setup(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp())
        self.backend = self.run(open_kind(self.kind, self.dir, self.cluster, recover=True))
        self.store = self.backend.mail
        user = self.run(Accounts(self.backend.directory, bcrypt_rounds=4).add_user("m@example.com", "pw"))
        self.ids = {name: self.run(self.store.get_mailbox(user.id, name)).id for name in BOXES}
        # model: mailbox → {uid: (flags, body)}
        self.model: dict[str, dict[int, tuple[frozenset[str], bytes]]] = {name: {} for name in BOXES}
        self.uidnext = {name: 1 for name in BOXES}
        self.modseq = {name: self.run(self.store.status(self.ids[name])).highestmodseq for name in BOXES}
        self.counter = 0

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        if hasattr(self, "store"):
            self.run(self.backend.close())
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    @rule(box=st.sampled_from(BOXES), flags=FLAGS)
    def append(self, box: str, flags: set[str]) -> None:
        self.counter += 1
        body = b"Subject: m%d\r\n\r\nbody %d\r\n" % (self.counter, self.counter)
        uid = self.run(self.store.append(self.ids[box], body, flags))
        assert uid == self.uidnext[box], "UIDs are assigned in strictly ascending order"
        self.uidnext[box] += 1
        self.model[box][uid] = (frozenset(flags), body)

    @precondition(lambda self: any(self.model.values()))
    @rule(data=st.data(), mode=st.sampled_from(["set", "add", "remove"]), flags=FLAGS)
    def store_flags(self, data, mode: str, flags: set[str]) -> None:
        box = data.draw(st.sampled_from([b for b in BOXES if self.model[b]]))
        uids = data.draw(st.sets(st.sampled_from(sorted(self.model[box])), min_size=1))
        result = self.run(self.store.store_flags(self.ids[box], sorted(uids), mode, flags))
        for uid in uids:
            old, body = self.model[box][uid]
            new = frozenset(flags) if mode == "set" else old | flags if mode == "add" else old - flags
            self.model[box][uid] = (new, body)
        assert {m.uid: m.flags for m in result} == {u: self.model[box][u][0] for u in uids}

    @rule(box=st.sampled_from(BOXES))
    def expunge(self, box: str) -> None:
        gone = self.run(self.store.expunge(self.ids[box]))
        expected = sorted(u for u, (f, _) in self.model[box].items() if "\\Deleted" in f)
        assert gone == expected
        for uid in gone:
            del self.model[box][uid]

    @precondition(lambda self: any(self.model.values()))
    @rule(data=st.data(), move=st.booleans())
    def copy_or_move(self, data, move: bool) -> None:
        src = data.draw(st.sampled_from([b for b in BOXES if self.model[b]]))
        dst = next(b for b in BOXES if b != src)
        uids = sorted(data.draw(st.sets(st.sampled_from(sorted(self.model[src])), min_size=1)))
        op = self.store.move if move else self.store.copy
        pairs = self.run(op(self.ids[src], uids, self.ids[dst]))
        assert [p[0] for p in pairs] == uids
        for old_uid, new_uid in pairs:
            assert new_uid == self.uidnext[dst]
            self.uidnext[dst] += 1
            self.model[dst][new_uid] = self.model[src][old_uid]
            if move:
                del self.model[src][old_uid]

    @invariant()
    def matches_model(self) -> None:
        if not hasattr(self, "store"):
            return
        for box in BOXES:
            metas = self.run(self.store.list_messages(self.ids[box]))
            assert [m.uid for m in metas] == sorted(self.model[box])
            assert {m.uid: m.flags for m in metas} == {u: f for u, (f, _) in self.model[box].items()}
            status = self.run(self.store.status(self.ids[box]))
            assert status.messages == len(self.model[box])
            assert status.unseen == sum(1 for f, _ in self.model[box].values() if "\\Seen" not in f)
            assert status.uidnext == self.uidnext[box]
            assert status.highestmodseq >= self.modseq[box], "MODSEQ never goes back"
            self.modseq[box] = status.highestmodseq
            assert all(m.modseq <= status.highestmodseq for m in metas)
        for box in BOXES:
            for meta in self.run(self.store.list_messages(self.ids[box])):
                assert self.run(self.store.read_message(meta.blob_id)) == self.model[box][meta.uid][1]
        # Message bytes: exactly those still referenced.
        referenced = {m.blob_id for b in BOXES for m in self.run(self.store.list_messages(self.ids[b]))}
        assert self.run(stored_blobs(self.backend)) == referenced


SETTINGS = settings(max_examples=25, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_store_machine_sqlite() -> None:
    run_state_machine_as_test(StoreMachine, settings=SETTINGS)


def test_store_machine_postgres(pg_cluster: Any) -> None:
    class OnPostgres(StoreMachine):
        kind = "postgres"
        cluster = pg_cluster
    run_state_machine_as_test(OnPostgres, settings=SETTINGS)
