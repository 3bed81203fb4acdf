"""The search box syntax → SearchQuery → IMAP SEARCH keys (pure; RFC 3501 §6.4.4).

``from:alice subject:"quarterly report" invoice`` means FROM alice AND SUBJECT "quarterly
report" AND TEXT invoice. Words without a prefix search the whole message (TEXT).
"""

from __future__ import annotations

import shlex

from rmail.client.model import SearchQuery

FIELDS = {"from": "FROM", "to": "TO", "subject": "SUBJECT", "body": "BODY", "text": "TEXT", "cc": "CC"}
#: Bound on terms and term length: a search box, not a query language.
MAX_TERMS = 10
MAX_TERM_LENGTH = 200


def parse_search(text: str) -> SearchQuery:
    """Parse the search box; raises ValueError with a user-facing message."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    terms: list[tuple[str, str]] = []
    for word in words:
        key, sep, value = word.partition(":")
        if sep and key.lower() in FIELDS:
            field, value = key.lower(), value
        else:
            field, value = "text", word
        value = value.strip()
        if not value:
            continue
        if len(value) > MAX_TERM_LENGTH:
            raise ValueError(f"search term longer than {MAX_TERM_LENGTH} characters")
        if any(c in value for c in "\r\n\0"):
            raise ValueError("search terms cannot contain line breaks")
        terms.append((field, value))
    if not terms:
        raise ValueError("type something to search for, e.g. from:alice subject:report")
    if len(terms) > MAX_TERMS:
        raise ValueError(f"at most {MAX_TERMS} search terms")
    return SearchQuery(tuple(terms))


def matches(query: SearchQuery, fields: dict[str, str]) -> bool:
    """Case-insensitive substring semantics of IMAP SEARCH, for in-memory backends and tests."""
    for field, value in query.terms:
        hay = fields.get(field, "") if field != "text" else " ".join(fields.values())
        if value.lower() not in hay.lower():
            return False
    return True
