"""IMAP connection states, the commands each allows, and the capability list, as data.

RFC 3501 §3 defines four states; §6 says which commands each accepts (mox keeps the same
tables as `commandsState*`). A command outside its state's table gets BAD; these tables are
the only place that decides it, and every command in them has one handler
(`handlers.HANDLERS`). Capabilities follow
SPEC.md: the "always" list before and after login, AUTH= only where a password may travel
(TLS active, or TLS not configured), LOGINDISABLED and STARTTLS on cleartext when TLS is
configured.
"""

from __future__ import annotations

import enum
from typing import Final

from . import commands as c

__all__ = ["ALWAYS_CAPABILITIES", "COMMANDS_BY_STATE", "ENABLE", "SESSION_CAPABILITIES", "State",
           "allowed", "capabilities"]
__all__ += ["REV2_REQUIRES"]


class State(enum.Enum):
    """Connection state (RFC 3501 §3)."""

    #: Before LOGIN/AUTHENTICATE succeeds (§3.1).
    NOT_AUTHENTICATED = "not authenticated"
    #: Logged in, no mailbox selected (§3.2).
    AUTHENTICATED = "authenticated"
    #: A mailbox is selected (§3.3).
    SELECTED = "selected"
    #: LOGOUT received or the server is closing the connection (§3.4).
    LOGOUT = "logout"


#: Valid in every state (RFC 3501 §6.1; ID is allowed before login, RFC 2971 §3.1).
_ANY: Final = frozenset({c.Capability, c.Noop, c.Logout, c.Id})

_NOT_AUTHENTICATED: Final = _ANY | {c.StartTLS, c.Authenticate, c.Login}

#: COMPRESS (RFC 4978 §5: command-auth), GETQUOTA, GETQUOTAROOT, SETQUOTA (RFC 9208 §5).
_SESSION_EXTENSIONS: Final = frozenset({c.Compress, c.GetQuota, c.GetQuotaRoot, c.SetQuota})
#: NOTIFY (RFC 5465 §3: authenticated and selected states).
_NOTIFY_COMMANDS: Final = frozenset({c.Notify})

#: RFC 3501 §6.3 plus NAMESPACE (RFC 2342), ENABLE (RFC 5161), IDLE (RFC 2177 is valid in
#: the authenticated state too: it reports mailbox-independent changes).
_AUTHENTICATED: Final = _ANY | _SESSION_EXTENSIONS | _NOTIFY_COMMANDS | {
    c.Select, c.Examine, c.Create, c.Delete, c.Rename, c.Subscribe, c.Unsubscribe, c.List,
    c.Lsub, c.Status, c.Append, c.Namespace, c.Enable, c.Idle,
} | {c.GenUrlAuth, c.ResetKey, c.UrlFetch}  # URLAUTH (RFC 4467 §6)

#: RFC 3501 §6.4 plus UNSELECT (RFC 3691), MOVE (RFC 6851), UID EXPUNGE (RFC 4315).
_SELECTED: Final = _AUTHENTICATED | {
    c.Check, c.Close, c.Expunge, c.UidExpunge, c.Search, c.Fetch, c.Store, c.Copy, c.Move,
    c.Unselect,
    c.CancelUpdate,  # RFC 5267 §4.3.5 (command-select)
} | {c.Sort, c.Thread}  # RFC 5256

COMMANDS_BY_STATE: Final[dict[State, frozenset[type[c.Command]]]] = {
    State.NOT_AUTHENTICATED: _NOT_AUTHENTICATED,
    State.AUTHENTICATED: _AUTHENTICATED,
    State.SELECTED: _SELECTED,
    State.LOGOUT: frozenset(),
}

#: Listed in this order on every connection (SPEC.md, "always").
ALWAYS_CAPABILITIES: Final = ("IMAP4rev1", "IDLE", "SPECIAL-USE", "NAMESPACE", "UIDPLUS",
                              "MOVE", "ID", "ENABLE", "UNSELECT", "LITERAL+")
#: Resynchronisation (RFC 7162), on every connection after the "always" list.
SYNC_CAPABILITIES: Final = ("CONDSTORE", "QRESYNC")
#: After login, after the "always" list (as Dovecot, whose pre-login list is the short one):
#: RFC 4978, RFC 9208 (STORAGE is the one resource; no QUOTASET: users cannot set quotas),
#: RFC 6855 (through ENABLE).
SESSION_CAPABILITIES: Final = ("COMPRESS=DEFLATE", "QUOTA", "QUOTA=RES-STORAGE", "UTF8=ACCEPT")
#: After login, after SESSION_CAPABILITIES: RFC 5465 (handlers/notify.py).
NOTIFY_CAPABILITIES: Final = ("NOTIFY",)
#: Where AUTH= is listed: an initial response may go with AUTHENTICATE (RFC 4959).
_SASL_CAPABILITIES: Final = ("AUTH=PLAIN", "AUTH=LOGIN", "SASL-IR")

#: What ENABLE can turn on (RFC 5161 §3.1): each name a client may ENABLE, with the names it
#: enables (an extension may bring another along: RFC 7162 §3.2.3's QRESYNC enables
#: CONDSTORE). An extension that needs enabling adds its line here and reads
#: ``session.enabled``; ENABLE answers ``* ENABLED`` with what it newly enabled.
ENABLE: Final[dict[str, tuple[str, ...]]] = {
    "UTF8=ACCEPT": ("UTF8=ACCEPT",),
    "CONDSTORE": ("CONDSTORE",),
    "QRESYNC": ("QRESYNC", "CONDSTORE"),     # RFC 7162 §3.2.3
    "IMAP4REV2": ("IMAP4REV2",),             # RFC 9051 Appendix A (SessionState.rev2)
}

#: IMAP4rev2 (RFC 9051) is listed right after IMAP4rev1, and only when the list also holds
#: every extension rev2 folds in that is not part of the "always" list or the lists above
#: it: rev2 requires BINARY's FETCH side (RFC 9051 §6.4.5), which is another tuple's.
REV2_REQUIRES: Final = ("BINARY",)


#: SORT and THREAD (RFC 5256 §1), SORT's DISPLAYFROM/DISPLAYTO (RFC 5957 §3), SORT RETURN
#: (ESORT, RFC 5267 §3) and its updating results (CONTEXT=SORT, RFC 5267 §4), after the
#: "always" list on every connection.
SORT_THREAD_CAPABILITIES: Final = ("SORT", "SORT=DISPLAY", "ESORT", "CONTEXT=SORT",
                                   "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES")

#: SEARCH extensions, on every connection after the "always" list: ESEARCH (RFC 4731),
#: SEARCHRES (RFC 5182), CONTEXT=SEARCH (RFC 5267 §4), WITHIN (RFC 5032).
SEARCH_CAPABILITIES: Final = ("ESEARCH", "SEARCHRES", "CONTEXT=SEARCH", "WITHIN")
#: Mailbox-list extensions (handlers/mailboxes.py, listing.py): RFC 5258, RFC 5819, RFC 3348
#: (its attributes, which LIST always had), RFC 6154 §3.
MAILBOX_CAPABILITIES: Final = ("LIST-EXTENDED", "LIST-STATUS", "CHILDREN", "CREATE-SPECIAL-USE")
#: STATUS SIZE (RFC 8438); APPENDLIMIT=n (RFC 7889) follows it when a limit is configured.
STATUS_CAPABILITIES: Final = ("STATUS=SIZE",)
#: Message extensions, on every connection after APPENDLIMIT: RFC 3516, RFC 3502, RFC 4469,
#: RFC 8970, RFC 4467, RFC 5524, RFC 8474, RFC 8514.
MESSAGE_CAPABILITIES: Final = ("BINARY", "MULTIAPPEND", "CATENATE", "PREVIEW", "URLAUTH",
                               "URLAUTH=BINARY", "OBJECTID", "SAVEDATE")


def allowed(state: State, command: c.Command) -> bool:
    """Whether `command` may run in `state`."""
    return type(command) in COMMANDS_BY_STATE[state]


def capabilities(*, tls_configured: bool, tls_active: bool,
                 authenticated: bool = False, append_limit: int | None = None) -> tuple[str, ...]:
    """The capability list for a connection (SPEC.md "Protocol details", RFC 3501 §6.2.1).

    Args:
        tls_configured: the server has a certificate (STARTTLS/993 exist).
        tls_active: this connection is encrypted (993, or after STARTTLS).
        authenticated: after login, AUTH=/STARTTLS/LOGINDISABLED no longer apply.
        append_limit: the one message-size limit every mailbox's APPEND has (RFC 7889 §2 (a));
            None leaves APPENDLIMIT out.
    """
    caps = list(ALWAYS_CAPABILITIES)
    caps += SYNC_CAPABILITIES
    caps += SEARCH_CAPABILITIES
    caps += SORT_THREAD_CAPABILITIES
    caps += MAILBOX_CAPABILITIES
    caps += STATUS_CAPABILITIES
    if append_limit is not None:
        caps.append(f"APPENDLIMIT={append_limit}")
    caps += MESSAGE_CAPABILITIES
    # Last before the returns: it looks at the whole list (RFC 9051 needs BINARY there).
    if all(name in caps for name in REV2_REQUIRES):
        caps.insert(caps.index("IMAP4rev1") + 1, "IMAP4rev2")
    if authenticated:
        return tuple(caps) + SESSION_CAPABILITIES + NOTIFY_CAPABILITIES
    if tls_active or not tls_configured:
        caps += _SASL_CAPABILITIES
    else:
        caps += ["STARTTLS", "LOGINDISABLED"]
    return tuple(caps)


def login_allowed(*, tls_configured: bool, tls_active: bool) -> bool:
    """LOGIN/AUTHENTICATE are refused on cleartext when TLS is configured (SPEC.md)."""
    return tls_active or not tls_configured
