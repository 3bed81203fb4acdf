"""The main screen: folder tree, message list, status line; every mailbox action lives here.

Blocking calls go through thread workers; results come back with ``call_from_thread``.
When the connection drops, the screen says so and retries with backoff (the backend
reconnects on its next call), so the client never has to be restarted.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Static, Tree
from textual.worker import get_current_worker

from rmail.client.backend import ConnectionLost, MailError
from rmail.client.folders import find_special
from rmail.client.screens.base import ClientScreen
from rmail.client.model import Folder, MessageSummary, SearchQuery
from rmail.client.search import parse_search
from rmail.client.screens.modals import ConfirmScreen, FolderPickerScreen, PromptScreen
from rmail.client.widgets.folder_tree import FolderTree
from rmail.client.widgets.message_list import PREFETCH_MARGIN, MessageList

if TYPE_CHECKING:
    from rmail.client.app import MailClientApp

#: Longest pause between reconnect attempts.
MAX_BACKOFF = 60.0
#: An IDLE wait is renewed this often (the backend caps it by RFC 2177's 29 minutes anyway).
IDLE_WAIT = 300.0


class MainScreen(ClientScreen):
    """Browse folders and messages."""

    BINDINGS = [
        Binding("enter", "open", "Open", show=False),
        Binding("r", "reply", "Reply"),
        Binding("R", "reply_all", "Reply all"),
        Binding("f", "forward", "Forward"),
        Binding("c", "compose", "Compose"),
        Binding("d", "delete", "Delete"),
        Binding("a", "archive", "Archive"),
        Binding("m", "move", "Move"),
        Binding("y,C", "copy", "Copy"),
        Binding("s,F", "flag", "Flag"),
        Binding("u", "toggle_read", "Read/unread"),
        Binding("slash", "search", "Search"),
        Binding("escape", "clear_search", "Clear search", show=False),
        Binding("g", "refresh", "Refresh"),
        Binding("t", "threads", "Threads"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__(id="main")
        self.folder: str = "INBOX"
        self.folders: list[Folder] = []
        self.all_uids: list[int] = []  # display order (newest first) of the folder or search
        self.search: SearchQuery | None = None
        self._backoff = 0.0
        self._idle_folder = ""
        self._stopping = threading.Event()

    @property
    def mail_app(self) -> MailClientApp:
        return self.app  # type: ignore[return-value]

    # -- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(Text(self.mail_app.account_label()), id="account-bar")
        with Horizontal(id="panes"):
            yield FolderTree(id="folders")
            with Vertical(id="list-pane"):
                yield MessageList(id="messages")
                yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(MessageList).focus()
        self.load_folders(open_after=True)

    def on_unmount(self) -> None:
        self._stopping.set()

    @property
    def message_list(self) -> MessageList:
        return self.query_one(MessageList)

    def set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(Text(text))

    def _update_status(self) -> None:
        ml = self.message_list
        total = len(self.all_uids)
        parts = [self.folder]
        if self.search is not None:
            parts.append(f"search {self.search}: {total} found (esc clears)")
        else:
            parts.append(f"{total} messages")
        if ml.row_count < total:
            parts.append(f"{ml.row_count} loaded")
        if ml.threaded:
            parts.append("threads")
        self.set_status(" · ".join(parts))

    # -- worker plumbing -----------------------------------------------------------------
    def _call(self, fn: Callable[..., object], *args: object) -> None:
        """call_from_thread that tolerates the app shutting down underneath a worker."""
        if self._stopping.is_set():
            return
        try:
            self.app.call_from_thread(fn, *args)
        except RuntimeError:
            pass

    def _failed(self, exc: MailError, what: str) -> None:
        """Report an error from a worker; on connection loss schedule a reconnect."""
        if isinstance(exc, ConnectionLost):
            self._backoff = min(MAX_BACKOFF, max(2.0, self._backoff * 2))
            self.notify(f"{exc} — reconnecting in {self._backoff:.0f} s", title="Server unreachable", severity="error")
            self.set_timer(self._backoff, self._reconnect)
        else:
            self.notify(str(exc), title=f"{what} failed", severity="error")

    def _reconnect(self) -> None:
        self.load_folders(open_after=True)

    def _succeeded(self) -> None:
        self._backoff = 0.0

    # -- folders -------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="folders", exit_on_error=False)
    def load_folders(self, open_after: bool = False) -> None:
        try:
            folders = self.mail_app.backend.list_folders()
        except MailError as exc:
            self._call(self._failed, exc, "Listing folders")
            return
        self._call(self._show_folders, folders, open_after)

    def _show_folders(self, folders: list[Folder], open_after: bool) -> None:
        self._succeeded()
        self.folders = folders
        names = {f.name for f in folders}
        if self.folder not in names and folders:
            self.folder = next((f.name for f in folders if f.name.upper() == "INBOX"), folders[0].name)
        self.query_one(FolderTree).show_folders(folders, self.folder)
        if open_after:
            self.open_folder(self.folder)

    def on_tree_node_selected(self, event: Tree.NodeSelected[str]) -> None:
        event.stop()
        if event.node.data:
            self.open_folder(event.node.data)
            self.message_list.focus()

    def open_folder(self, name: str) -> None:
        self.folder = name
        self.search = None
        self.set_status(f"{name} · loading…")
        self._load_folder(name, None)
        self._start_idle(name)

    @work(thread=True, exclusive=True, group="list", exit_on_error=False)
    def _load_folder(self, name: str, query: SearchQuery | None) -> None:
        backend = self.mail_app.backend
        try:
            uids = backend.search(name, query) if query is not None else backend.folder_uids(name)
            uids.sort(reverse=True)
            first = backend.fetch_summaries(name, uids[: self.mail_app.page_size])
        except MailError as exc:
            self._call(self._failed, exc, "Opening the folder")
            return
        except ValueError as exc:
            self._call(self.notify, str(exc), severity="error")
            return
        self._call(self._show_folder, name, query, uids, first)

    def _show_folder(self, name: str, query: SearchQuery | None, uids: list[int], first: list[MessageSummary]) -> None:
        if name != self.folder:
            return
        self._succeeded()
        self.search = query
        self.all_uids = uids
        self.message_list.show(first, more=len(first) < len(uids))
        self._update_status()

    def on_message_list_need_more(self, event: MessageList.NeedMore) -> None:
        event.stop()
        ml = self.message_list
        # Re-check: the message may have been posted while the table was being rebuilt.
        if not ml.more_available or ml.cursor_row < ml.row_count - PREFETCH_MARGIN:
            return
        missing = [u for u in self.all_uids if u not in ml.summaries][: self.mail_app.page_size]
        if missing:
            self._load_page(self.folder, missing)

    @work(thread=True, exclusive=True, group="page", exit_on_error=False)
    def _load_page(self, name: str, uids: list[int]) -> None:
        try:
            page = self.mail_app.backend.fetch_summaries(name, uids)
        except MailError as exc:
            self._call(self._failed, exc, "Loading messages")
            return
        self._call(self._show_page, name, page)

    def _show_page(self, name: str, page: list[MessageSummary]) -> None:
        if name != self.folder:
            return
        ml = self.message_list
        loaded = len(ml.summaries) + len(page)
        ml.extend(page, more=loaded < len(self.all_uids))
        self._update_status()

    # -- live updates (IDLE) -------------------------------------------------------------
    def _start_idle(self, name: str) -> None:
        self._idle_folder = name
        self._idle(name)

    @work(thread=True, exclusive=True, group="idle", exit_on_error=False)
    def _idle(self, name: str) -> None:
        worker = get_current_worker()

        def stop() -> bool:
            return worker.is_cancelled or self._stopping.is_set() or self._idle_folder != name

        delay = 2.0
        while not stop():
            try:
                changed = self.mail_app.backend.idle(name, stop, IDLE_WAIT)
                delay = 2.0
            except ConnectionLost:
                deadline = time.monotonic() + delay
                while not stop() and time.monotonic() < deadline:
                    time.sleep(0.2)
                delay = min(MAX_BACKOFF, delay * 2)
                continue
            except MailError:
                return  # e.g. the folder vanished; the next folder switch starts afresh
            if changed and not stop():
                self._call(self.sync_folder)

    def sync_folder(self) -> None:
        """Pick up new and vanished messages without disturbing the cursor."""
        if self.search is None:
            self._sync(self.folder, set(self.message_list.summaries))
        self.load_folders()

    @work(thread=True, exclusive=True, group="sync", exit_on_error=False)
    def _sync(self, name: str, loaded: set[int]) -> None:
        backend = self.mail_app.backend
        try:
            uids = backend.folder_uids(name)
            known = set(self.all_uids)
            new = sorted((u for u in uids if u not in known), reverse=True)
            fresh = backend.fetch_summaries(name, new)
        except MailError as exc:
            self._call(self._failed, exc, "Refreshing")
            return
        self._call(self._apply_sync, name, sorted(uids, reverse=True), fresh)

    def _apply_sync(self, name: str, uids: list[int], fresh: list[MessageSummary]) -> None:
        if name != self.folder or self.search is not None:
            return
        ml = self.message_list
        present = set(uids)
        ml.remove_uids([u for u in list(ml.summaries) if u not in present])
        ml.prepend(fresh)
        self.all_uids = uids
        ml.more_available = len(ml.summaries) < len(uids)
        self._update_status()
        if fresh:
            self.notify(f"{len(fresh)} new message{'s' if len(fresh) > 1 else ''} in {name}")

    # -- opening -------------------------------------------------------------------------
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        summary = self.message_list.current()
        if summary is None:
            return
        from rmail.client.screens.reader import ReaderScreen

        folder = self.query_one(FolderTree).folder(self.folder)
        if folder is not None and folder.special_use == "\\Drafts":
            self.mail_app.edit_draft(self.folder, summary.uid)
            return
        self.app.push_screen(ReaderScreen(self.folder, summary))

    # -- actions on the current message -------------------------------------------------
    def _target(self) -> MessageSummary | None:
        summary = self.message_list.current()
        if summary is None:
            self.notify("No message selected.", severity="warning")
        return summary

    def action_reply(self) -> None:
        if (s := self._target()) is not None:
            self.mail_app.start_reply(self.folder, s.uid, reply_all=False)

    def action_reply_all(self) -> None:
        if (s := self._target()) is not None:
            self.mail_app.start_reply(self.folder, s.uid, reply_all=True)

    def action_forward(self) -> None:
        if (s := self._target()) is not None:
            self.mail_app.start_forward(self.folder, s.uid)

    def action_compose(self) -> None:
        self.mail_app.start_compose()

    def action_delete(self) -> None:
        if (s := self._target()) is not None:
            self.delete([s.uid])

    def action_archive(self) -> None:
        if (s := self._target()) is not None:
            self.archive([s.uid])

    def action_move(self) -> None:
        if (s := self._target()) is not None:
            self.pick_and_transfer([s.uid], move=True)

    def action_copy(self) -> None:
        if (s := self._target()) is not None:
            self.pick_and_transfer([s.uid], move=False)

    def action_flag(self) -> None:
        if (s := self._target()) is not None:
            self.set_flag(s, "\\Flagged", not s.flagged)

    def action_toggle_read(self) -> None:
        if (s := self._target()) is not None:
            self.set_flag(s, "\\Seen", not s.seen)

    def action_threads(self) -> None:
        self.message_list.toggle_threads()
        self._update_status()

    def action_refresh(self) -> None:
        self.load_folders()
        self._load_folder(self.folder, self.search)

    def action_search(self) -> None:
        def done(text: str | None) -> None:
            if not text:
                return
            try:
                query = parse_search(text)
            except ValueError as exc:
                self.notify(str(exc), severity="error")
                return
            self.set_status(f"{self.folder} · searching {query}…")
            self._load_folder(self.folder, query)

        self.app.push_screen(
            PromptScreen("Search (from: to: subject: body:, plain words search everything)", str(self.search or "")),
            done,
        )

    def action_clear_search(self) -> None:
        if self.search is not None:
            self._load_folder(self.folder, None)

    def action_help(self) -> None:
        self.mail_app.action_help()

    def action_quit(self) -> None:
        self.app.exit()

    # -- shared operations (also used by the reader) -----------------------------------
    def folder_for(self, attr: str, fallback: str) -> tuple[str, bool]:
        """(name, exists) of the special-use folder ``attr``."""
        found = find_special(self.folders, attr)
        return (found.name, True) if found else (fallback, False)

    def delete(self, uids: Sequence[int]) -> None:
        trash, exists = self.folder_for("\\Trash", "Trash")
        if self.folder == trash:

            def confirmed(yes: bool | None) -> None:
                if yes:
                    self._transfer(self.folder, list(uids), None, True, False)

            self.app.push_screen(ConfirmScreen("Delete permanently from Trash?"), confirmed)
            return
        self._transfer(self.folder, list(uids), trash, True, not exists)

    def archive(self, uids: Sequence[int]) -> None:
        archive, exists = self.folder_for("\\Archive", "Archive")
        if self.folder == archive:
            self.notify("Already in the archive.")
            return
        self._transfer(self.folder, list(uids), archive, True, not exists)

    def pick_and_transfer(self, uids: Sequence[int], *, move: bool) -> None:
        def chosen(dest: str | None) -> None:
            if dest:
                self._transfer(self.folder, list(uids), dest, move, False)

        title = "Move to folder" if move else "Copy to folder"
        self.app.push_screen(FolderPickerScreen(title, self.folders, exclude=self.folder), chosen)

    @work(thread=True, group="actions", exit_on_error=False)
    def _transfer(self, folder: str, uids: list[int], dest: str | None, move: bool, create: bool) -> None:
        backend = self.mail_app.backend
        try:
            if dest is None:
                backend.expunge(folder, uids)
            else:
                if create:
                    backend.create_folder(dest)
                (backend.move if move else backend.copy)(folder, uids, dest)
        except MailError as exc:
            self._call(self._failed, exc, "Moving" if move else "Copying")
            return
        self._call(self._transferred, folder, uids, dest, move)

    def _transferred(self, folder: str, uids: list[int], dest: str | None, move: bool) -> None:
        if move and folder == self.folder:
            self.message_list.remove_uids(uids)
            self.all_uids = [u for u in self.all_uids if u not in uids]
            self._update_status()
        n = len(uids)
        what = "message" if n == 1 else "messages"
        if dest is None:
            self.notify(f"Deleted {n} {what}.")
        else:
            self.notify(f"{'Moved' if move else 'Copied'} {n} {what} to {dest}.")
        self.load_folders()

    def set_flag(self, summary: MessageSummary, flag: str, on: bool) -> None:
        self._store_flag(self.folder, summary, flag, on)

    @work(thread=True, group="actions", exit_on_error=False)
    def _store_flag(self, folder: str, summary: MessageSummary, flag: str, on: bool) -> None:
        try:
            self.mail_app.backend.store_flags(folder, [summary.uid], [flag], on)
        except MailError as exc:
            self._call(self._failed, exc, "Changing flags")
            return
        flags = summary.flags | {flag} if on else summary.flags - {flag}
        self._call(self._flag_stored, folder, replace(summary, flags=frozenset(flags)), flag)

    def _flag_stored(self, folder: str, summary: MessageSummary, flag: str) -> None:
        if folder == self.folder:
            self.message_list.update(summary)
        if flag == "\\Seen":
            self.load_folders()

    def mark_seen_locally(self, folder: str, uid: int) -> None:
        """The reader marked a message read: update its row and the unread count."""
        s = self.message_list.summaries.get(uid)
        if folder == self.folder and s is not None and not s.seen:
            self.message_list.update(replace(s, flags=s.flags | {"\\Seen"}))
            self.load_folders()
