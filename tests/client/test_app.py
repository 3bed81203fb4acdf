"""Pilot tests of the client against the in-memory backend."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, Static, TextArea

from rmail.client.screens.compose import ComposeScreen
from rmail.client.screens.help import HelpScreen
from rmail.client.screens.login import LoginScreen
from rmail.client.screens.main import MainScreen
from rmail.client.screens.reader import ReaderScreen
from rmail.client.widgets.folder_tree import FolderTree
from rmail.client.widgets.message_list import MessageList
from tests.client.conftest import make_app, settle, wait_for
from tests.client.fake_backend import FakeServer, make_message


def _subjects(app) -> list[str]:
    ml = app.screen.query_one(MessageList)
    return [ml.summaries[int(ml.coordinate_to_cell_key((r, 0)).row_key.value)].subject for r in range(ml.row_count)]


async def test_browse_lists_folders_and_messages_newest_first(server: FakeServer) -> None:
    app = make_app(server)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.query_one(MessageList).row_count == 3)
        assert _subjects(app) == ["Lunch [friday]?", "Re: Quarterly report", "Quarterly report"]
        tree = app.screen.query_one(FolderTree)
        names = [n.data for n in tree.root.children]
        assert names[:5] == ["INBOX", "Drafts", "Sent", "Archive", "Trash"]
        inbox_label = tree.root.children[0].label.plain
        assert inbox_label == "INBOX (2)"  # two unread
        assert not app.worker_errors


async def test_open_message_shows_text_and_marks_read(server: FakeServer) -> None:
    app = make_app(server)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.query_one(MessageList).row_count == 3)
        await pilot.press("j")  # second row: the unread reply
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ReaderScreen) and app.screen.message is not None)
        body = app.screen.query_one("#reader-body", Static)
        assert "Looks good." in str(body.render())
        assert "\\Seen" in server.folders["INBOX"].messages[2][1]
        await pilot.press("q")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert app.screen.query_one(MessageList).summaries[2].seen


async def test_html_only_message_is_converted(server: FakeServer) -> None:
    app = make_app(server)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.query_one(MessageList).row_count == 3)
        await pilot.press("enter")  # newest: the HTML one
        await wait_for(pilot, lambda: isinstance(app.screen, ReaderScreen) and app.screen.message is not None)
        text = app.screen.message.text
        assert "Shall we get lunch on Friday?" in text and "- pizza" in text and "<b>" not in text


async def test_reply_fills_fields_and_quotes_then_sends(server: FakeServer) -> None:
    app = make_app(server)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.query_one(MessageList).row_count == 3)
        await pilot.press("j", "j")  # the original "Quarterly report"
        await pilot.press("R")  # reply all
        await wait_for(pilot, lambda: isinstance(app.screen, ComposeScreen))
        screen = app.screen
        assert screen.query_one("#to", Input).value == "Bob <bob@example.com>"
        assert screen.query_one("#cc", Input).value == "carol@example.com"
        assert screen.query_one("#subject", Input).value == "Re: Quarterly report"
        body = screen.query_one("#body", TextArea).text
        assert "> The numbers are in.\n> See attached." in body
        assert screen.draft.in_reply_to == "<q1@example.com>"
        assert screen.draft.references == ("<q1@example.com>",)
        screen.query_one("#body", TextArea).insert("Thanks!")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        sender, rcpts, raw = server.sent[-1]
        assert sender == "alice@example.com" and rcpts == ["bob@example.com", "carol@example.com"]
        assert b"In-Reply-To: <q1@example.com>" in raw and b"Thanks!" in raw
        assert len(server.folders["Sent"].messages) == 1
        assert "\\Answered" in server.folders["INBOX"].messages[1][1]


async def test_forward_keeps_attachment(server: FakeServer) -> None:
    app = make_app(server)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.query_one(MessageList).row_count == 3)
        await pilot.press("j", "j", "f")
        await wait_for(pilot, lambda: isinstance(app.screen, ComposeScreen))
        draft = app.screen.draft
        assert draft.subject == "Fwd: Quarterly report"
        assert [a.filename for a in draft.attachments] == ["report.pdf"]
        assert "---------- Forwarded message ----------" in draft.body


async def test_invalid_address_blocks_sending(server: FakeServer) -> None:
    app = make_app(server)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, ComposeScreen)
        app.screen.query_one("#to", Input).value = "not an address"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ComposeScreen)
        assert server.sent == []
        assert any("not an address" in n.message for n in app._notifications)


async def test_delete_moves_to_trash(server: FakeServer) -> None:
    app = make_app(server)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.query_one(MessageList).row_count == 3)
        await pilot.press("d")
        await wait_for(pilot, lambda: app.screen.query_one(MessageList).row_count == 2)
        assert 3 not in server.folders["INBOX"].messages
        trash = server.folders["Trash"].messages
        assert len(trash) == 1 and b"Lunch [friday]?" in next(iter(trash.values()))[0]


async def test_search_finds_by_from_and_escape_clears(server: FakeServer) -> None:
    app = make_app(server)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.query_one(MessageList).row_count == 3)
        await pilot.press("slash")
        await settle(pilot)
        for ch in "from:carol":
            await pilot.press(ch)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.query_one(MessageList).row_count == 1)
        assert _subjects(app) == ["Re: Quarterly report"]
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.query_one(MessageList).row_count == 3)


async def test_wrong_password_shows_error_and_stays_on_login(server: FakeServer) -> None:
    app = make_app(server, password="wrong")
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, LoginScreen)
        error = str(app.screen.query_one("#login-error", Static).render())
        assert "Wrong user name or password" in error and "[AUTHENTICATIONFAILED]" in error
        # Retry with the right password through the form.
        app.screen.query_one("#password", Input).value = "secret"
        await pilot.click("#connect")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))


async def test_new_mail_appears_without_keypress(server: FakeServer) -> None:
    app = make_app(server)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.query_one(MessageList).row_count == 3)
        await pilot.pause(0.1)
        server.deliver("INBOX", make_message("Fresh news", sender="eve@example.net"))
        await wait_for(pilot, lambda: app.screen.query_one(MessageList).row_count == 4)
        assert _subjects(app)[0] == "Fresh news"


async def test_server_gone_is_reported_and_recovered(server: FakeServer) -> None:
    app = make_app(server)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.query_one(MessageList).row_count == 3)
        server.down = True
        await pilot.press("g")
        await wait_for(pilot, lambda: any("reconnecting" in n.message for n in app._notifications))
        server.down = False
        server.deliver("INBOX", make_message("After the outage"))
        await wait_for(pilot, lambda: app.screen.query_one(MessageList).row_count == 4, timeout=8)
        assert not app.worker_errors


async def test_paging_loads_more_rows_near_the_end() -> None:
    server = FakeServer()
    for k in range(60):
        server.deliver("INBOX", make_message(f"Message {k}", body=f"body {k}\n"))
    app = make_app(server, page_size=25)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.query_one(MessageList).row_count == 25)
        ml = app.screen.query_one(MessageList)
        ml.move_cursor(row=20)
        await wait_for(pilot, lambda: ml.row_count == 50)
        assert _subjects(app)[0] == "Message 59"
        assert _subjects(app)[49] == "Message 10"


async def test_threads_toggle_nests_replies(server: FakeServer) -> None:
    app = make_app(server)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.query_one(MessageList).row_count == 3)
        await pilot.press("t")
        await settle(pilot)
        assert _subjects(app) == ["Lunch [friday]?", "Quarterly report", "Re: Quarterly report"]
        ml = app.screen.query_one(MessageList)
        assert "└" in ml.get_row("2")[3].plain


async def test_help_lists_every_main_key(server: FakeServer) -> None:
    app = make_app(server)
    async with app.run_test(size=(120, 50)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        from rich.console import Console

        from rmail.client.screens.help import bindings_table

        console = Console(width=100, record=True)
        console.print(bindings_table(app.screen.sections))
        text = console.export_text()
        for key in ("r ", "R ", "f ", "c ", "d ", "a ", "m ", "y / C", "s / F", "u ", "/ ", "g ", "t ", "? ", "q "):
            assert key in text, key
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)


async def test_save_attachment(server: FakeServer, tmp_path: Path) -> None:
    app = make_app(server, tmp=tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.query_one(MessageList).row_count == 3)
        await pilot.press("j", "j", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ReaderScreen) and app.screen.message is not None)
        assert [a.filename for a in app.screen.message.attachments] == ["report.pdf"]
        await pilot.press("w")
        await settle(pilot)
        await pilot.press("enter")  # accept the default path in the download dir
        await wait_for(pilot, lambda: (tmp_path / "report.pdf").exists())
        assert (tmp_path / "report.pdf").read_bytes() == b"%PDF-1.4 fake"


async def test_draft_saved_and_reopened(server: FakeServer) -> None:
    app = make_app(server)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("c")
        await settle(pilot)
        app.screen.query_one("#to", Input).value = "bob@example.com"
        app.screen.query_one("#bcc", Input).value = "secret@example.com"
        app.screen.query_one("#subject", Input).value = "Plan"
        app.screen.query_one("#body", TextArea).text = "first draft"
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and len(server.folders["Drafts"].messages) == 1)
        main = app.screen
        main.open_folder("Drafts")
        await wait_for(pilot, lambda: main.query_one(MessageList).row_count == 1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ComposeScreen))
        assert app.screen.query_one("#bcc", Input).value == "secret@example.com"
        assert app.screen.query_one("#body", TextArea).text.strip() == "first draft"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: len(server.sent) == 1 and not server.folders["Drafts"].messages)
        assert server.sent[0][1] == ["bob@example.com", "secret@example.com"]
        assert b"secret@example.com" not in server.sent[0][2]  # Bcc is never transmitted


async def test_confirmations_default_to_the_safe_answer() -> None:
    """Enter on a fresh question is No: "Discard this message?" keeps the draft, an untrusted
    certificate stays untrusted; only y (or clicking Yes) confirms."""
    from textual.app import App

    from rmail.client.screens.modals import ConfirmScreen

    answers: list[bool] = []

    class Host(App[None]):
        def on_mount(self) -> None:
            self.push_screen(ConfirmScreen("Discard this message?", yes="Discard", no="Keep editing"),
                             answers.append)

    app = Host()
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        app.push_screen(ConfirmScreen("Discard this message?"), answers.append)
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
    assert answers == [False, True]
