"""The reader: headers, the text (HTML converted when there is no text part), attachments."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from rmail.client.backend import MailError
from rmail.client.mime import attachment_data, parse_message
from rmail.client.screens.base import ClientScreen
from rmail.client.model import MessageSummary, ReadableMessage
from rmail.client.render import header_block, human_size
from rmail.client.screens.modals import PromptScreen

if TYPE_CHECKING:
    from rmail.client.app import MailClientApp
    from rmail.client.screens.main import MainScreen


class ReaderScreen(ClientScreen):
    """Show one message; j/k step through the list like a pager."""

    BINDINGS = [
        Binding("q,escape", "back", "Back"),
        Binding("j", "step(1)", "Next"),
        Binding("k", "step(-1)", "Previous"),
        Binding("r", "reply", "Reply"),
        Binding("R", "reply_all", "Reply all"),
        Binding("f", "forward", "Forward"),
        Binding("d", "delete", "Delete"),
        Binding("a", "archive", "Archive"),
        Binding("m", "move", "Move"),
        Binding("y,C", "copy", "Copy"),
        Binding("s,F", "flag", "Flag"),
        Binding("u", "toggle_read", "Unread"),
        Binding("w", "save_attachment", "Save attachment"),
        Binding("question_mark", "help", "Help"),
    ]

    def __init__(self, folder: str, summary: MessageSummary) -> None:
        super().__init__(id="reader")
        self.folder = folder
        self.summary = summary
        self.raw: bytes = b""
        self.message: ReadableMessage | None = None

    @property
    def mail_app(self) -> MailClientApp:
        return self.app  # type: ignore[return-value]

    @property
    def main(self) -> MainScreen:
        return self.mail_app.main_screen

    def compose(self) -> ComposeResult:
        yield Static(Text("Loading…"), id="reader-headers")
        with VerticalScroll(id="reader-body-scroll"):
            yield Static(Text(""), id="reader-body")
        yield OptionList(id="attachments")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#attachments", OptionList).display = False
        self.query_one("#reader-body-scroll").focus()
        self._load(self.folder, self.summary)

    @work(thread=True, exclusive=True, group="reader", exit_on_error=False)
    def _load(self, folder: str, summary: MessageSummary) -> None:
        backend = self.mail_app.backend
        try:
            raw = backend.fetch_message(folder, summary.uid)
            message = parse_message(raw)
            if not summary.seen:
                backend.store_flags(folder, [summary.uid], ["\\Seen"], True)
        except MailError as exc:
            self.app.call_from_thread(self._failed, exc)
            return
        self.app.call_from_thread(self._show, folder, summary, raw, message)

    def _failed(self, exc: MailError) -> None:
        self.query_one("#reader-headers", Static).update(Text(f"Cannot open this message: {exc}"))
        self.notify(str(exc), title="Opening the message failed", severity="error")

    def _show(self, folder: str, summary: MessageSummary, raw: bytes, message: ReadableMessage) -> None:
        self.folder, self.summary, self.raw, self.message = folder, summary, raw, message
        headers = header_block(message)
        if message.from_html:
            headers.append("\n")
            headers.append("(converted from HTML)", style="dim italic")
        self.query_one("#reader-headers", Static).update(headers)
        self.query_one("#reader-body", Static).update(Text(message.text or "(no text)"))
        self.query_one("#reader-body-scroll", VerticalScroll).scroll_home(animate=False)
        options = self.query_one("#attachments", OptionList)
        options.clear_options()
        for att in message.attachments:
            label = Text("📎 ")
            label.append(att.filename)
            label.append(f"  {att.content_type}, {human_size(att.size)}", style="dim")
            options.add_option(Option(label, id=str(att.index)))
        options.display = bool(message.attachments)
        self.main.mark_seen_locally(folder, summary.uid)

    # -- navigation ----------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_step(self, step: int) -> None:
        ml = self.main.message_list
        uid = ml.neighbour(self.summary.uid, step)
        if uid is None:
            self.notify("No more messages." if step > 0 else "This is the first message.")
            return
        ml.select_uid(uid)
        self.query_one("#reader-headers", Static).update(Text("Loading…"))
        self._load(self.folder, ml.summaries[uid])

    # -- actions -------------------------------------------------------------------------
    def action_reply(self) -> None:
        self.mail_app.start_reply(self.folder, self.summary.uid, reply_all=False)

    def action_reply_all(self) -> None:
        self.mail_app.start_reply(self.folder, self.summary.uid, reply_all=True)

    def action_forward(self) -> None:
        self.mail_app.start_forward(self.folder, self.summary.uid)

    def action_delete(self) -> None:
        self.app.pop_screen()
        self.main.delete([self.summary.uid])

    def action_archive(self) -> None:
        self.app.pop_screen()
        self.main.archive([self.summary.uid])

    def action_move(self) -> None:
        self.app.pop_screen()
        self.main.pick_and_transfer([self.summary.uid], move=True)

    def action_copy(self) -> None:
        self.main.pick_and_transfer([self.summary.uid], move=False)

    def action_flag(self) -> None:
        s = self.main.message_list.summaries.get(self.summary.uid, self.summary)
        self.main.set_flag(s, "\\Flagged", not s.flagged)

    def action_toggle_read(self) -> None:
        s = self.main.message_list.summaries.get(self.summary.uid, self.summary)
        self.main.set_flag(s, "\\Seen", not s.seen)
        self.notify("Marked unread." if s.seen else "Marked read.")

    def action_help(self) -> None:
        self.mail_app.action_help()

    # -- attachments ---------------------------------------------------------------------
    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self._ask_save(int(event.option.id))

    def action_save_attachment(self) -> None:
        if self.message is None or not self.message.attachments:
            self.notify("This message has no attachments.")
            return
        options = self.query_one("#attachments", OptionList)
        index = options.highlighted if options.highlighted is not None else 0
        self._ask_save(self.message.attachments[index].index)

    def _ask_save(self, index: int) -> None:
        assert self.message is not None
        info = next(a for a in self.message.attachments if a.index == index)
        default = str(self.mail_app.download_dir / info.filename)

        def chosen(path: str | None) -> None:
            if path:
                self._save(index, Path(path).expanduser())

        self.app.push_screen(PromptScreen(f"Save {info.filename} to", default), chosen)

    @work(thread=True, group="save", exit_on_error=False)
    def _save(self, index: int, path: Path) -> None:
        try:
            _name, _ctype, data = attachment_data(self.raw, index)
            if path.is_dir():
                path = path / _name
            # "x" mode: never overwrite an existing file silently.
            with open(path, "xb") as fh:
                fh.write(data)
        except (OSError, KeyError) as exc:
            self.app.call_from_thread(self.notify, f"Cannot save: {exc}", severity="error")
            return
        self.app.call_from_thread(self.notify, f"Saved {path} ({human_size(len(data))}).")
