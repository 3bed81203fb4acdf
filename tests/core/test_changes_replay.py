"""Replaying ``changes_since`` into the IMAP selected-mailbox view always ends where a fresh
SELECT starts.

Hypothesis drives the store with create, delete, rename, append, flag, expunge, move and
delete-then-recreate (also of names with children, which stay as \\Noselect), while a few
"sessions" (``SelectedMailbox`` views, as the IMAP layer keeps them) follow their mailboxes
the way a session does: on each sync they check that the mailbox still is the one they
selected (same id and UIDVALIDITY, else the session ends with BYE), read ``changes_since``
their MODSEQ and apply it. After every sync, the view must equal a fresh snapshot.

The contract under test: a mailbox's expunge records belong to one life of it; a re-created
mailbox has a new id and a higher UIDVALIDITY, and nothing of an old life reaches a view of
a new one (nor the other way round).
"""

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
from rmail.server.core.errors import AlreadyExists, InvalidInput, NotFound, PermissionDenied
from rmail.server.core.storage import MailStore
from rmail.server.imap.selected import SelectedMailbox
from tests.helpers.stores import open_kind

NAMES = ["INBOX", "Work", "Work/Sub", "Play"]
#: Created at the start, so "Work" has a child and its DELETE keeps it as \Noselect.
START = ["Work/Sub"]
FLAGS = st.sets(st.sampled_from(["\\Seen", "\\Flagged", "\\Deleted", "$todo"]), max_size=2)
REFUSED = (AlreadyExists, InvalidInput, NotFound, PermissionDenied)
MAX_VIEWS = 3


class ChangesReplay(RuleBasedStateMachine):
    kind = "sqlite"
    cluster: Any = None       #: the PostgreSQL test cluster, for kind "postgres"

    @initialize()
    def setup(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp())
        self.backend = self.run(open_kind(self.kind, self.dir, self.cluster, recover=True))
        self.store = self.backend.mail
        self.user = self.run(Accounts(self.backend.directory, bcrypt_rounds=4).add_user("m@example.com", "pw")).id
        self.views: list[SelectedMailbox] = []
        self.lives: dict[int, int] = {}          # every mailbox id seen → its UIDVALIDITY
        self.validity: dict[str, int] = {}       # name → highest UIDVALIDITY seen for it
        self.counter = 0
        for name in START:
            self.run(self.store.create_mailbox(self.user, name))

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        if hasattr(self, "store"):
            self.run(self.backend.close())
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def box(self, name: str):  # noqa: ANN201
        try:
            return self.run(self.store.get_mailbox(self.user, name))
        except NotFound:
            return None

    def attempt(self, coro) -> None:  # noqa: ANN001
        try:
            self.run(coro)
        except REFUSED:
            pass

    # -- mailbox operations ---------------------------------------------------------------------

    @rule(name=st.sampled_from(NAMES))
    def create(self, name: str) -> None:
        self.attempt(self.store.create_mailbox(self.user, name))

    @rule(name=st.sampled_from(NAMES))
    def delete(self, name: str) -> None:
        self.attempt(self.store.delete_mailbox(self.user, name))

    @rule(name=st.sampled_from(NAMES[1:]))
    def delete_and_recreate(self, name: str) -> None:
        """The issue's case: a name (often with children, so kept \\Noselect) comes back,
        and a session selects the new mailbox at once."""
        self.attempt(self.store.delete_mailbox(self.user, name))
        self.attempt(self.store.create_mailbox(self.user, name))
        if len(self.views) < MAX_VIEWS:
            self.select(name)

    @rule(old=st.sampled_from(NAMES), new=st.sampled_from(NAMES))
    def rename(self, old: str, new: str) -> None:
        self.attempt(self.store.rename_mailbox(self.user, old, new))

    # -- message operations ---------------------------------------------------------------------

    @rule(name=st.sampled_from(NAMES), flags=FLAGS, count=st.integers(1, 3))
    def append(self, name: str, flags: set[str], count: int) -> None:
        box = self.box(name)
        if box is None:
            return
        for _ in range(count):
            self.counter += 1
            self.run(self.store.append(box.id, b"Subject: m%d\r\n\r\nbody\r\n" % self.counter, flags))

    @rule(name=st.sampled_from(NAMES), data=st.data(), mode=st.sampled_from(["set", "add", "remove"]),
          flags=FLAGS)
    def flag(self, name: str, data, mode: str, flags: set[str]) -> None:  # noqa: ANN001
        box = self.box(name)
        if box is None:
            return
        uids = [m.uid for m in self.run(self.store.list_messages(box.id))]
        if uids:
            chosen = data.draw(st.sets(st.sampled_from(uids), min_size=1))
            self.run(self.store.store_flags(box.id, sorted(chosen), mode, flags))

    @rule(name=st.sampled_from(NAMES), data=st.data())
    def expunge(self, name: str, data) -> None:  # noqa: ANN001
        box = self.box(name)
        if box is None:
            return
        uids = [m.uid for m in self.run(self.store.list_messages(box.id))]
        if uids:
            chosen = data.draw(st.sets(st.sampled_from(uids), min_size=1))
            self.run(self.store.store_flags(box.id, sorted(chosen), "add", ["\\Deleted"]))
        self.run(self.store.expunge(box.id))

    @rule(src=st.sampled_from(NAMES), dst=st.sampled_from(NAMES), data=st.data())
    def move(self, src: str, dst: str, data) -> None:  # noqa: ANN001
        a, b = self.box(src), self.box(dst)
        if a is None or b is None or a.id == b.id:
            return
        uids = [m.uid for m in self.run(self.store.list_messages(a.id))]
        if uids:
            self.run(self.store.move(a.id, sorted(data.draw(st.sets(st.sampled_from(uids), min_size=1))), b.id))

    # -- sessions ---------------------------------------------------------------------------------

    @precondition(lambda self: len(self.views) < MAX_VIEWS)
    @rule(name=st.sampled_from(NAMES))
    def select_mailbox(self, name: str) -> None:
        self.select(name)

    def select(self, name: str) -> None:
        try:
            snap = self.run(self.store.snapshot(self.user, name))
        except NotFound:
            return
        view = SelectedMailbox(snap.mailbox, readonly=False)
        view.load_columns(snap.uids, snap.flags, snap.sizes, snap.dates, modseqs=snap.modseqs,
                          savedates=snap.savedates, recent_from=None)
        self.views.append(view)

    @precondition(lambda self: self.views)
    @rule(data=st.data())
    def sync(self, data) -> None:  # noqa: ANN001
        view = data.draw(st.sampled_from(self.views))
        # What the session's flush does (imap/handlers/sync.py): is the selected mailbox still
        # this life of it? (A RENAME keeps id and UIDVALIDITY and the session follows it;
        # anything else ends it with BYE.)
        current = {b.id: b for b in self.run(self.store.list_mailboxes(self.user))}
        box = current.get(view.mailbox.id)
        if box is None or box.uidvalidity != view.mailbox.uidvalidity:
            self.views.remove(view)
            return
        view.mailbox = box
        try:
            changes = self.run(self.store.changes_since(box.id, view.modseq))
        except NotFound:
            self.views.remove(view)
            return
        update = view.apply(changes, allow_expunge=True)
        # Every EXPUNGE told to the client names a message the client knew of.
        assert all(1 <= seq for seq in update.expunged)
        fresh = self.run(self.store.snapshot(self.user, box.name))
        assert fresh.mailbox.id == box.id and fresh.mailbox.uidvalidity == box.uidvalidity
        assert list(view.uids) == list(fresh.uids), "replayed changes == a fresh SELECT: UIDs"
        assert view.flags == fresh.flags, "replayed changes == a fresh SELECT: flags"
        assert list(view.modseqs) == list(fresh.modseqs), "... and each message's MODSEQ"
        assert view.modseq == fresh.mailbox.highestmodseq == view.synced_modseq

    # -- the lives of mailboxes -------------------------------------------------------------------

    @invariant()
    def lives_are_distinct(self) -> None:
        if not hasattr(self, "store"):
            return
        for box in self.run(self.store.list_mailboxes(self.user)):
            known = self.lives.get(box.id)
            if known is None:
                # A new life: a never-used id, and a UIDVALIDITY above any earlier life's.
                assert box.uidvalidity > self.validity.get(box.name, 0), box
                self.lives[box.id] = box.uidvalidity
            else:
                assert known == box.uidvalidity, "an id names one life (RENAME keeps it whole)"
            self.validity[box.name] = max(self.validity.get(box.name, 0), box.uidvalidity)
            status = self.run(self.store.status(box.id))
            if status.uidnext == 1:
                changes = self.run(self.store.changes_since(box.id, 0))
                assert changes.expunged == () and changes.changed == (), "a new life starts empty"


def test_changes_replay_sqlite() -> None:
    run_state_machine_as_test(ChangesReplay, settings=settings(
        max_examples=100, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]))


def test_changes_replay_postgres(pg_cluster: Any) -> None:
    class OnPostgres(ChangesReplay):
        kind = "postgres"
        cluster = pg_cluster
    # Fewer examples: each one is a new database.
    run_state_machine_as_test(OnPostgres, settings=settings(
        max_examples=30, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]))


class Pick:
    """Stands in for Hypothesis' ``data`` where a pinned run chooses for itself."""

    def __init__(self, choose) -> None:  # noqa: ANN001
        self.choose = choose

    def draw(self, strategy):  # noqa: ANN001, ANN201
        return self.choose()


def test_pinned_replay_across_a_recreated_parent() -> None:
    """The issue's sequence, always run: messages in "Work" (which has a child), one expunged
    (a tombstone at a MODSEQ above 1), DELETE (kept \\Noselect), CREATE, a session selects the
    new "Work" and three messages arrive. The replayed view must hold all three; before, the
    old life's tombstone for UID 1 hid the new UID 1."""
    machine = ChangesReplay()
    machine.setup()
    try:
        machine.append(name="Work", flags=set(), count=4)
        work = machine.box("Work")
        machine.run(machine.store.store_flags(work.id, [1], "add", ["\\Deleted"]))
        assert machine.run(machine.store.expunge(work.id)) == [1]
        machine.select_mailbox(name="Work")
        machine.delete_and_recreate(name="Work")
        old_view, new_view = machine.views
        assert new_view.mailbox.id != old_view.mailbox.id
        assert new_view.mailbox.uidvalidity > old_view.mailbox.uidvalidity
        machine.append(name="Work", flags=set(), count=3)
        machine.sync(Pick(lambda: new_view))
        assert list(new_view.uids) == [1, 2, 3]
        machine.sync(Pick(lambda: old_view))
        assert machine.views == [new_view], "the session on the old life ends (BYE)"
        machine.lives_are_distinct()
    finally:
        machine.teardown()
