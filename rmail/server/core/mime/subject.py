"""The base subject of a message (RFC 5256 §2.1): its subject without reply, forward and list
artifacts, which SORT (SUBJECT) and THREAD (ORDEREDSUBJECT, REFERENCES) compare.

`base_subject` takes the subject as decoded text — RFC 2047 encoded-words already turned into
Unicode, as `text.header_str` does and as `ParsedMessage.subject` is stored — and applies the
steps of §2.1 with the grammar of §5 (literals are case-insensitive):

    subj-refwd   = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
    subj-blob    = "[" *BLOBCHAR "]" *WSP          ; BLOBCHAR: anything but "[" and "]"
    subj-leader  = (*subj-blob subj-refwd) / WSP
    subj-trailer = "(fwd)" / WSP
    subj-fwd     = "[fwd:" subject "]"

The work is linear in the subject's length: each step removes what it matched, and the one
look-ahead that can fail after scanning (blobs not followed by a subj-refwd) remembers how far
it looked, so a subject of ten thousand "[x]" blobs is not rescanned once per blob.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

__all__ = ["BaseSubject", "base_subject"]

_SPACES: Final = re.compile(r"[ \t\r\n]+")
_BLOB: Final = re.compile(r"\[[^\[\]]*\] *")
_REFWD: Final = re.compile(r"(?:re|fwd?) *(?:\[[^\[\]]*\] *)?:", re.IGNORECASE | re.ASCII)


class BaseSubject(NamedTuple):
    """The base subject and whether extracting it removed a reply or forward marker (a
    subj-refwd, a "(fwd)" trailer or a "[fwd: ...]" wrapper): RFC 5256's "reply or forward",
    which the REFERENCES algorithm asks of a message."""

    text: str
    reply_or_forward: bool


def _blobs_end(s: str, pos: int) -> int:
    """Where the run of subj-blobs starting at `pos` ends (`pos` itself when there is none)."""
    m = _BLOB.match(s, pos)
    while m is not None and m.end() > pos:
        pos = m.end()
        m = _BLOB.match(s, pos)
    return pos


def base_subject(subject: str) -> BaseSubject:
    """RFC 5256 §2.1 steps (1)-(7) on a decoded subject.

    Args:
        subject: the Subject field's text with encoded-words decoded (step 1's first half).
    """
    # (1) Tabs and continuations become spaces; runs of spaces one space.
    s = _SPACES.sub(" ", subject)
    marked = False
    while True:
        # (2) Trailers: spaces and "(fwd)", repeatedly.
        end = len(s)
        while end:
            if s[end - 1] == " ":
                end -= 1
            elif end >= 5 and s[end - 5:end].lower() == "(fwd)":
                end -= 5
                marked = True
            else:
                break
        s = s[:end]
        # (3)-(5) Leaders, and blobs that leave a non-empty base, until neither applies.
        pos = 0
        no_refwd_before = 0  # blobs starting before this are not followed by a subj-refwd
        while pos < len(s):
            if s[pos] == " ":  # a WSP leader (step 3)
                pos += 1
                continue
            if pos >= no_refwd_before:
                after = _blobs_end(s, pos)
                m = _REFWD.match(s, after)
                if m is not None:  # *subj-blob subj-refwd (step 3)
                    pos = m.end()
                    marked = True
                    continue
                no_refwd_before = after
            blob = _BLOB.match(s, pos)
            if blob is not None and blob.end() < len(s):  # step (4): the rest is non-empty
                pos = blob.end()
                continue
            break
        s = s[pos:]
        # (6) "[fwd:" ... "]" around the whole: unwrap and start again from step (2).
        if len(s) >= 6 and s[:5].lower() == "[fwd:" and s[-1] == "]":
            s = s[5:-1]
            marked = True
            continue
        return BaseSubject(s, marked)
