"""Readable plain text from an HTML-only message body (stdlib ``html.parser``, no I/O).

Not a renderer: it keeps paragraphs, line breaks, lists, quotes, link targets and preformatted
text, and drops scripts, styles and markup. Everything a hostile message could send is bounded.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

#: HTML bodies larger than this are cut before parsing: a reader does not need more than
#: a few MiB of text, and html.parser is O(n) but not free.
MAX_HTML = 4 * 1024 * 1024
#: Deepest list/quote nesting that still changes the indentation.
MAX_DEPTH = 20

_BLOCK = frozenset(
    "address article aside div dl dt dd fieldset figure footer form h1 h2 h3 h4 h5 h6 header "
    "main nav p section table tr ul ol li pre blockquote hr".split()
)
_SKIP = frozenset(("script", "style", "head", "title", "template", "noscript"))
_VOID = frozenset("br hr img input meta link area base col embed source track wbr".split())


class _Converter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.skip = 0
        self.pre = 0
        self.quote = 0
        self.lists: list[list[int]] = []  # [counter] for <ol>, [] for <ul>
        self.links: list[str | None] = []
        self.link_text: list[str] = []
        self.cells = 0
        self.indent = ""  # list-item indentation of the line being built

    # -- line handling -------------------------------------------------------------------
    def _prefix(self) -> str:
        return "> " * min(self.quote, MAX_DEPTH)

    def _newline(self) -> None:
        text = "".join(self.current)
        if not self.pre:
            text = re.sub(r"[ \t\r\n\f]+", " ", text).strip()
        self.lines.append(self._prefix() + self.indent + text if text else self._prefix().rstrip())
        self.current = []
        self.indent = ""

    def _block_break(self, blank: bool = False) -> None:
        if self.current and "".join(self.current).strip():
            self._newline()
        if blank and self.lines and self.lines[-1].strip("> "):
            self.lines.append(self._prefix().rstrip())

    # -- parser callbacks ---------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            if tag not in _VOID:
                self.skip += 1
            return
        if self.skip:
            return
        a = dict(attrs)
        if tag == "br":
            self._newline()
        elif tag in ("p", "h1", "h2", "h3", "h4", "h5", "h6", "table"):
            self._block_break(blank=True)
        elif tag == "blockquote":
            self._block_break(blank=True)
            self.quote += 1
        elif tag == "pre":
            self._block_break(blank=True)
            self.pre += 1
        elif tag in ("ul", "ol"):
            self._block_break()
            self.lists.append([0] if tag == "ol" else [])
        elif tag == "li":
            self._block_break()
            indent = "  " * min(max(len(self.lists) - 1, 0), MAX_DEPTH)
            self.indent = indent
            if self.lists and self.lists[-1]:
                self.lists[-1][0] += 1
                self.current.append(f"{self.lists[-1][0]}. ")
            else:
                self.current.append("- ")
        elif tag == "hr":
            self._block_break()
            self.lines.append(self._prefix() + "-" * 40)
        elif tag == "tr":
            self._block_break()
            self.cells = 0
        elif tag in ("td", "th"):
            if self.cells:
                self.current.append(" | ")
            self.cells += 1
        elif tag == "img":
            alt = (a.get("alt") or "").strip()
            if alt:
                self.current.append(f"[{alt}]")
        elif tag == "a":
            self.links.append(a.get("href"))
            self.link_text.append("")
        elif tag in _BLOCK:
            self._block_break()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if self.skip:
            return
        if tag == "a" and self.links:
            href = self.links.pop()
            text = self.link_text.pop().strip()
            if href and not href.startswith(("#", "javascript:")) and href not in (text, f"mailto:{text}"):
                self.current.append(f" <{href}>")
        elif tag in ("p", "h1", "h2", "h3", "h4", "h5", "h6", "table"):
            self._block_break(blank=True)
        elif tag == "blockquote":
            self._block_break()
            while self.quote and self.lines and self.lines[-1] == self._prefix().rstrip():
                self.lines.pop()
            self.quote = max(0, self.quote - 1)
            self._block_break(blank=True)
        elif tag == "pre":
            if self.current:
                self._newline()
            self.pre = max(0, self.pre - 1)
            self._block_break(blank=True)
        elif tag in ("ul", "ol"):
            self._block_break()
            if self.lists:
                self.lists.pop()
        elif tag in _BLOCK:
            self._block_break()

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.pre:
            parts = data.split("\n")
            for k, part in enumerate(parts):
                if k:
                    self._newline()
                self.current.append(part)
        else:
            self.current.append(data)
        for k in range(len(self.link_text)):
            self.link_text[k] += data

    def result(self) -> str:
        if self.current:
            self._newline()
        text = "\n".join(line.rstrip() for line in self.lines)
        return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def html_to_text(html: str) -> str:
    """Convert an HTML document or fragment to readable text."""
    conv = _Converter()
    conv.feed(html[:MAX_HTML])
    conv.close()
    return conv.result()
