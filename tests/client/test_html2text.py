"""HTML → readable text."""

from __future__ import annotations

import pytest

from rmail.client.html2text import html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>one</p><p>two</p>", "one\n\ntwo"),
        ("a<br>b", "a\nb"),
        ("<p>lots   of\n  space</p>", "lots of space"),
        ("<ul><li>x</li><li>y</li></ul>", "- x\n- y"),
        ("<ol><li>x</li><li>y</li></ol>", "1. x\n2. y"),
        ("<ul><li>a<ul><li>b</li></ul></li></ul>", "- a\n  - b"),
        ("<blockquote><p>q</p></blockquote><p>after</p>", "> q\n\nafter"),
        ('<a href="https://x.org/">site</a>', "site <https://x.org/>"),
        ('<a href="https://x.org/">https://x.org/</a>', "https://x.org/"),
        ('<a href="mailto:bob@x.org">bob@x.org</a>', "bob@x.org"),
        ("<pre>  a\n    b</pre>", "  a\n    b"),
        ("<style>p{color:red}</style><script>alert(1)</script><p>ok</p>", "ok"),
        ("<p>caf&eacute; &amp; &#x263A;</p>", "café & ☺"),
        ('<img alt="logo"> text', "[logo] text"),
        ("<table><tr><td>1</td><td>2</td></tr><tr><td>3</td><td>4</td></tr></table>", "1 | 2\n3 | 4"),
        ("<p>unclosed <b>bold", "unclosed bold"),
        ("", ""),
    ],
    ids=lambda v: v[:20] if isinstance(v, str) else None,
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_markup_like_text_stays_literal() -> None:
    assert html_to_text("<p>[bold]not markup[/bold]</p>") == "[bold]not markup[/bold]"


def test_deep_nesting_is_bounded() -> None:
    html = "<blockquote>" * 500 + "deep" + "</blockquote>" * 500
    out = html_to_text(html)
    assert out.endswith("deep") and out.count(">") <= 20
