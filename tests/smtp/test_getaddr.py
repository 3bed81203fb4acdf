"""The fast MAIL/RCPT address path agrees with aiosmtpd's full parser wherever it applies."""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import SMTP

from rmail.server.smtp.session import _PLAIN_PATH, RmailSMTP


class _Bare(RmailSMTP):
    def __init__(self) -> None:  # no transport or service: only _getaddr is exercised
        self.local_part_limit = 0


@pytest.mark.parametrize("arg", [
    "<a@b.com>", " <a.b+c@sub.example.com> SIZE=100 BODY=8BITMIME", "<a@b.com>x", "<A_B-c@X.ORG>",
    "<>", '<"q x"@b.com>', "<a@[1.2.3.4]>", "a@b.com", "<a..b@c.com>", "<.a@b.com>", "<a@b.com-> x",
    "<ü@b.com>", "<a@b.com", "<a(comment)@b.com>", "<@route:a@b.com>",
])
def test_same_answer_as_aiosmtpd(arg: str) -> None:
    assert _Bare()._getaddr(arg) == SMTP._getaddr(_Bare(), arg)


def test_plain_path_is_taken_for_ordinary_addresses() -> None:
    assert _PLAIN_PATH.match("<alice@example.com> SIZE=2048")
    assert not _PLAIN_PATH.match("<>")
