"""The operations of admin protocol version 1: name → AdminService method, argument types,
result type. The server checks a request's arguments against this table before it calls
anything; the console decodes each result with the same table.

Adding an operation is backwards compatible (an older server answers UnknownOperation);
changing an operation's arguments or result is not, and needs a new protocol version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ..core import errors
from ..core.errors import InvalidInput
from ..core.events import Event
from ..core.model import Account, AliasRule
from ..metrics import MetricsSummary
from ..runtime import Snapshot
from . import values
from .firstrun import CertificateView
from .views import ConnectionView, QueueView, ResolveView, ServerInfo, UserView

#: Longest string argument: the console's inputs stop at 256 characters; addresses, patterns
#: and passwords longer than this are mistakes or attacks.
MAX_STRING_ARG: Final = 1024


@dataclass(frozen=True, slots=True)
class Op:
    method: str                              #: the AdminService method
    params: tuple[tuple[str, Any], ...]      #: (name, type), in call order
    result: Any                              #: the type of the answer (for values.load)
    optional: frozenset[str] = frozenset()   #: params that may be left out

    def parse_args(self, args: dict[str, Any]) -> dict[str, Any]:
        """``args`` checked against ``params``.

        Raises:
            InvalidInput: an unknown, missing or ill-typed argument, or an over-long string.
        """
        known = {name for name, _ in self.params}
        unknown = sorted(set(args) - known)
        if unknown:
            raise InvalidInput(f"unknown argument(s): {', '.join(unknown)}")
        parsed: dict[str, Any] = {}
        for name, tp in self.params:
            if name not in args:
                if name in self.optional:
                    continue
                raise InvalidInput(f"missing argument {name!r}")
            value = args[name]
            if isinstance(value, str) and len(value) > MAX_STRING_ARG:
                raise InvalidInput(f"argument {name!r} is longer than {MAX_STRING_ARG} characters")
            try:
                parsed[name] = values.load(tp, value, name)
            except ValueError as exc:
                raise InvalidInput(str(exc)) from None
        return parsed


def _op(method: str, result: Any, *params: tuple[str, Any], optional: tuple[str, ...] = ()) -> Op:
    return Op(method, params, result, frozenset(optional))


ADDRESS = ("address", str)
DOMAIN = ("domain", str)
PATTERN = ("pattern", str)
ENTRY = ("entry_id", int)

#: Every operation but ``subscribe``, which the connection itself handles (events start flowing).
OPS: Final[dict[str, Op]] = {
    "info": _op("info", ServerInfo),
    "status": _op("snapshot", Snapshot),
    "metrics": _op("metrics", MetricsSummary),
    "connections.list": _op("connections", list[ConnectionView]),
    "connections.close": _op("disconnect", bool, ("conn_id", int)),
    "queue.list": _op("queue", list[QueueView]),
    "queue.get": _op("queue_entry", QueueView | None, ENTRY),
    "queue.retry": _op("queue_retry", None, ENTRY),
    "queue.delete": _op("queue_delete", None, ENTRY),
    "queue.head": _op("queue_message_head", str, ENTRY),
    "users.list": _op("users", list[UserView]),
    "users.any": _op("has_users", bool),
    "users.add": _op("add_user", Account, ADDRESS, ("password", str), ("admin", bool), optional=("admin",)),
    "users.get": _op("get_user", Account, ADDRESS),
    "users.passwd": _op("set_password", None, ADDRESS, ("password", str)),
    "users.admin": _op("set_admin", Account, ADDRESS, ("admin", bool)),
    "users.remove": _op("remove_user", None, ADDRESS),
    "domains.list": _op("domains", list[str]),
    "aliases.list": _op("aliases", list[AliasRule], DOMAIN),
    "aliases.add": _op("add_alias", AliasRule, DOMAIN, PATTERN, ("target", str)),
    "aliases.remove": _op("remove_alias", None, DOMAIN, PATTERN),
    "aliases.move": _op("move_alias", list[AliasRule], DOMAIN, PATTERN, ("position", int)),
    "aliases.resolve": _op("resolve", ResolveView, ADDRESS),
    "dns.records": _op("dns_records", str, DOMAIN),
    "tls.self_signed": _op("make_certificate", CertificateView, ("config_path", str | None),
                           optional=("config_path",)),
}


def _event_types() -> dict[str, type[Event]]:
    import inspect

    from ..core import events
    return {name: cls for name, cls in vars(events).items()
            if inspect.isclass(cls) and issubclass(cls, Event) and cls is not Event}


#: Event classes by name, as events cross the socket (``EventLine.kind``).
EVENT_TYPES: Final[dict[str, type[Event]]] = _event_types()


#: Core error classes by name: the server names an error by its class (or nearest base in
#: here), the console raises the same class, so a form shows "already exists" inline as it
#: does with the server in its own process.
ERROR_TYPES: Final[dict[str, type[errors.RmailError]]] = {
    cls.__name__: cls for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.RmailError)}
