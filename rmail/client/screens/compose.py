"""The compose screen: To/Cc/Bcc/Subject/body, attachments, send and save as draft."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.widgets import Button, Footer, Input, Label, Static, TextArea

from rmail.client.screens.base import ClientScreen
from rmail.client.backend import MailError
from rmail.client.compose import Attachment, Draft, attachment_from_file, build_message, recipients, validate, with_attachment
from rmail.client.render import human_size
from rmail.client.screens.modals import ConfirmScreen, PromptScreen

if TYPE_CHECKING:
    from rmail.client.app import MailClientApp

#: Refuse to attach files above this size (the server's default SIZE limit is 25 MiB and
#: base64 grows data by a third).
MAX_ATTACHMENT = 18 * 1024 * 1024


class ComposeScreen(ClientScreen):
    """Edit a Draft; ``answering`` marks the original \\Answered, ``replacing`` is a draft to drop."""

    BINDINGS = [
        Binding("ctrl+s", "send", "Send", priority=True),
        Binding("ctrl+t", "save_draft", "Save draft", priority=True),
        Binding("ctrl+o", "attach", "Attach file", priority=True),
        Binding("ctrl+r", "remove_attachment", "Remove attachment", show=False),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(
        self,
        draft: Draft,
        *,
        answering: tuple[str, int] | None = None,
        replacing: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(id="compose")
        self.draft = draft
        self.answering = answering
        self.replacing = replacing
        self.busy = False

    @property
    def mail_app(self) -> MailClientApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        d = self.draft
        with Grid(id="compose-fields"):
            yield Label("From")
            yield Static(Text(d.sender), id="from")
            yield Label("To")
            yield Input(d.to, id="to", placeholder="bob@example.com, Carol <carol@example.org>")
            yield Label("Cc")
            yield Input(d.cc, id="cc")
            yield Label("Bcc")
            yield Input(d.bcc, id="bcc")
            yield Label("Subject")
            yield Input(d.subject, id="subject")
        yield TextArea(d.body, id="body", soft_wrap=True, show_line_numbers=False)
        yield Static("", id="attachment-list")
        with Horizontal(id="compose-buttons"):
            yield Button("Send", variant="primary", id="send")
            yield Button("Save draft", id="save-draft")
            yield Button("Attach…", id="attach")
            yield Button("Cancel", id="cancel")
        yield Footer()

    def on_mount(self) -> None:
        self._show_attachments()
        if not self.draft.to:
            self.query_one("#to", Input).focus()
        else:
            body = self.query_one("#body", TextArea)
            body.focus()
            body.move_cursor((0, 0))

    # -- form <-> draft ------------------------------------------------------------------
    def current_draft(self) -> Draft:
        return replace(
            self.draft,
            to=self.query_one("#to", Input).value,
            cc=self.query_one("#cc", Input).value,
            bcc=self.query_one("#bcc", Input).value,
            subject=self.query_one("#subject", Input).value,
            body=self.query_one("#body", TextArea).text,
        )

    def _show_attachments(self) -> None:
        widget = self.query_one("#attachment-list", Static)
        if not self.draft.attachments:
            widget.update(Text("No attachments (ctrl+o adds a file).", style="dim"))
            return
        text = Text()
        for k, att in enumerate(self.draft.attachments):
            if k:
                text.append("\n")
            text.append("📎 ")
            text.append(att.filename)
            text.append(f"  {att.content_type}, {human_size(len(att.data))}", style="dim")
        widget.update(text)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "subject":
            self.query_one("#body", TextArea).focus()
        else:
            self.focus_next()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        action = {"send": self.action_send, "save-draft": self.action_save_draft, "attach": self.action_attach, "cancel": self.action_cancel}
        if event.button.id in action:
            action[event.button.id]()

    # -- actions -------------------------------------------------------------------------
    def action_send(self) -> None:
        if self.busy:
            return
        draft = self.current_draft()
        problems = validate(draft)
        if problems:
            self.notify("\n".join(problems), title="Cannot send", severity="error")
            return
        self.busy = True
        self.notify("Sending…")
        self._send(draft)

    @work(thread=True, exclusive=True, group="send", exit_on_error=False)
    def _send(self, draft: Draft) -> None:
        app = self.mail_app
        backend = app.backend
        raw = build_message(draft)
        try:
            backend.send(draft.sender, recipients(draft), raw)
        except MailError as exc:
            app.call_from_thread(self._send_failed, exc)
            return
        warnings: list[str] = []
        try:
            sent, exists = app.main_screen.folder_for("\\Sent", "Sent")
            if not exists:
                backend.create_folder(sent)
            backend.append(sent, raw, ["\\Seen"])
        except MailError as exc:
            warnings.append(f"sent, but not saved to Sent: {exc}")
        for what, target, op in (
            ("marking the original answered", self.answering, lambda f, u: backend.store_flags(f, [u], ["\\Answered"], True)),
            ("removing the old draft", self.replacing, lambda f, u: backend.expunge(f, [u])),
        ):
            if target is not None:
                try:
                    op(*target)
                except MailError as exc:
                    warnings.append(f"{what} failed: {exc}")
        app.call_from_thread(self._sent, warnings)

    def _send_failed(self, exc: MailError) -> None:
        self.busy = False
        self.notify(f"{exc}\nThe message is still here; fix it and send again, or save a draft.", title="Sending failed", severity="error")

    def _sent(self, warnings: list[str]) -> None:
        self.busy = False
        for w in warnings:
            self.notify(w, severity="warning")
        self.notify("Message sent.")
        self.dismiss(None)
        self.mail_app.main_screen.sync_folder()

    def action_save_draft(self) -> None:
        if self.busy:
            return
        self.busy = True
        self._save_draft(self.current_draft())

    @work(thread=True, exclusive=True, group="send", exit_on_error=False)
    def _save_draft(self, draft: Draft) -> None:
        app = self.mail_app
        backend = app.backend
        try:
            drafts, exists = app.main_screen.folder_for("\\Drafts", "Drafts")
            if not exists:
                backend.create_folder(drafts)
            backend.append(drafts, build_message(draft, keep_bcc=True), ["\\Draft", "\\Seen"])
            if self.replacing is not None:
                folder, uid = self.replacing
                backend.expunge(folder, [uid])
        except MailError as exc:
            app.call_from_thread(self._send_failed, exc)
            return
        app.call_from_thread(self._draft_saved, drafts)

    def _draft_saved(self, folder: str) -> None:
        self.busy = False
        self.notify(f"Draft saved to {folder}.")
        self.dismiss(None)
        self.mail_app.main_screen.sync_folder()

    def action_attach(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self._read_attachment(Path(path).expanduser())

        self.app.push_screen(PromptScreen("Attach file", str(Path.cwd()) + "/"), chosen)

    @work(thread=True, group="attach", exit_on_error=False)
    def _read_attachment(self, path: Path) -> None:
        try:
            size = path.stat().st_size
            if size > MAX_ATTACHMENT:
                raise OSError(f"{path.name} is {human_size(size)}; the limit is {human_size(MAX_ATTACHMENT)}")
            data = path.read_bytes()
        except OSError as exc:
            self.app.call_from_thread(self.notify, f"Cannot attach: {exc}", severity="error")
            return
        self.app.call_from_thread(self._attached, attachment_from_file(path.name, data))

    def _attached(self, attachment: Attachment) -> None:
        self.draft = with_attachment(self.current_draft(), attachment)
        self._show_attachments()

    def action_remove_attachment(self) -> None:
        if self.draft.attachments:
            self.draft = replace(self.current_draft(), attachments=self.draft.attachments[:-1])
            self._show_attachments()

    def action_cancel(self) -> None:
        if self.current_draft() == self.draft and not self.busy:
            self.dismiss(None)
            return

        def answered(discard: bool | None) -> None:
            if discard:
                self.dismiss(None)

        self.app.push_screen(ConfirmScreen("Discard this message?", yes="Discard", no="Keep editing"), answered)
