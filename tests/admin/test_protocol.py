"""The admin protocol's codec without sockets: framing, bad lines, oversize lines, unknown
versions, every message both ways, and the values that ride in them."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import pytest

from rmail.server.admin import values
from rmail.server.admin.api import EVENT_TYPES, OPS
from rmail.server.admin.firstrun import CertificateView
from rmail.server.admin.protocol import (MAX_REQUEST_LINE, VERSION, Bye, EventLine, Failure, Hello, LineBuffer,
                                         LineTooLong, ProtocolError, Refused, Reply, Request, Resync,
                                         UnsupportedVersion, decode_from_server, decode_request, encode)
from rmail.server.admin.views import ConnectionView, QueueView, ResolveView, ServerInfo, UserView
from rmail.server.core.events import (AliasesChanged, ConnectionUpdated, ExternalChange, LogRecord,
                                      MessageReceived)
from rmail.server.core.model import Account, AliasRule
from rmail.server.core.space import SpaceState
from rmail.server.metrics import MetricsSummary
from rmail.server.runtime import Counters, Listener, Snapshot

# -- framing ---------------------------------------------------------------------------------


def lines_of(buffer: LineBuffer) -> list[bytes]:
    out = []
    while (line := buffer.next_line()) is not None:
        out.append(line)
    return out


def test_lines_come_out_whole_under_any_chunking() -> None:
    stream = b'{"a":1}\n{"b":"x\\ny"}\r\n\n{"c":3}\n'
    expected = [b'{"a":1}', b'{"b":"x\\ny"}', b"", b'{"c":3}']
    rng = random.Random(7)
    for _ in range(200):
        buffer, got, i = LineBuffer(100), [], 0
        while i < len(stream):
            step = rng.randint(1, 7)
            buffer.feed(stream[i:i + step])
            got.extend(lines_of(buffer))
            i += step
        assert got == expected
        assert buffer.pending == 0


def test_an_unfinished_line_waits_for_more() -> None:
    buffer = LineBuffer(100)
    buffer.feed(b'{"v":1,')
    assert buffer.next_line() is None
    buffer.feed(b'"id":1}\n')
    assert buffer.next_line() == b'{"v":1,"id":1}'


@pytest.mark.parametrize("chunks", [
    [b"x" * 101],                              # no newline yet, already too long
    [b"x" * 60, b"x" * 60],                    # grows past the cap over two reads
    [b"x" * 150 + b"\n"],                      # a complete line that is too long
], ids=["one-read", "trickle", "complete"])
def test_oversize_lines_are_refused(chunks: list[bytes]) -> None:
    buffer = LineBuffer(100)
    with pytest.raises(LineTooLong):
        for chunk in chunks:
            buffer.feed(chunk)
            buffer.next_line()


def test_a_line_of_exactly_the_cap_passes() -> None:
    buffer = LineBuffer(100)
    buffer.feed(b"x" * 100 + b"\n")
    assert buffer.next_line() == b"x" * 100


def test_a_slow_trickle_is_not_rescanned() -> None:
    """Bytes already searched for a newline are not searched again: a line trickled in a byte
    at a time finishes in linear time (a quadratic scan of 64 KiB would take seconds)."""
    import time
    buffer = LineBuffer(MAX_REQUEST_LINE)
    t0 = time.perf_counter()
    for _ in range(MAX_REQUEST_LINE - 1):
        buffer.feed(b"x")
        assert buffer.next_line() is None
    buffer.feed(b"\n")
    assert buffer.next_line() == b"x" * (MAX_REQUEST_LINE - 1)
    assert time.perf_counter() - t0 < 2.0


# -- requests: what a server must refuse -----------------------------------------------------

BAD_REQUESTS = [
    (b"garbage", ProtocolError, None, "not a JSON line"),
    (b"\xff\xfe", ProtocolError, None, "not a JSON line"),
    (b"[1, 2]", ProtocolError, None, "JSON object"),
    (b'"text"', ProtocolError, None, "JSON object"),
    (b'{"id": 1, "op": "status"}', ProtocolError, 1, '"v"'),
    (b'{"v": "1", "id": 1, "op": "status"}', ProtocolError, 1, '"v"'),
    (b'{"v": true, "id": 1, "op": "status"}', ProtocolError, 1, '"v"'),
    (b'{"v": 2, "id": 4, "op": "status"}', UnsupportedVersion, 4, "version 2 is not supported"),
    (b'{"v": 0, "id": 5, "op": "status"}', UnsupportedVersion, 5, "version 0"),
    (b'{"v": 1, "op": "status"}', ProtocolError, None, '"id"'),
    (b'{"v": 1, "id": "7", "op": "status"}', ProtocolError, None, '"id"'),
    (b'{"v": 1, "id": true, "op": "status"}', ProtocolError, None, '"id"'),
    (b'{"v": 1, "id": 8}', ProtocolError, 8, '"op"'),
    (b'{"v": 1, "id": 9, "op": ""}', ProtocolError, 9, '"op"'),
    (b'{"v": 1, "id": 10, "op": 3}', ProtocolError, 10, '"op"'),
    (b'{"v": 1, "id": 11, "op": "users.get", "args": ["a"]}', ProtocolError, 11, '"args"'),
]


@pytest.mark.parametrize(("line", "error", "request_id", "says"), BAD_REQUESTS,
                         ids=[line.decode("latin-1")[:40] for line, *_ in BAD_REQUESTS])
def test_bad_request_lines(line: bytes, error: type[ProtocolError], request_id: int | None, says: str) -> None:
    with pytest.raises(error) as caught:
        decode_request(line)
    assert type(caught.value) is error
    assert caught.value.request_id == request_id
    assert says in str(caught.value)
    # The server answers with the error's kind; a version mismatch says so by name.
    assert caught.value.kind == ("UnsupportedVersion" if error is UnsupportedVersion else "BadRequest")


def test_a_request_decodes() -> None:
    assert decode_request(b'{"v":1,"id":3,"op":"users.get","args":{"address":"a@b.c"}}') == \
        Request(3, "users.get", {"address": "a@b.c"})
    assert decode_request(b'{"v":1,"id":4,"op":"status"}') == Request(4, "status", {})


# -- both directions -------------------------------------------------------------------------

SERVER_MESSAGES = [
    Hello((1,), {"hostname": "mail.example.com"}),
    Refused("uid 1000 may not use this server's admin socket"),
    Reply(1, {"a": [1, 2.5, None, "x\ny"]}),
    Reply(2, None),
    Failure(3, "AlreadyExists", "user a@example.com already exists"),
    Failure(None, "BadRequest", "not a JSON line"),
    EventLine("LogRecord", {"level": "INFO", "logger": "rmail", "message": "hi\n[bold]", "created": 1.0}),
    Resync(),
    Bye("the server is shutting down"),
]


@pytest.mark.parametrize("message", SERVER_MESSAGES, ids=lambda m: type(m).__name__)
def test_server_messages_round_trip(message: object) -> None:
    line = encode(message)  # type: ignore[arg-type]
    assert line.endswith(b"\n") and line.count(b"\n") == 1     # one line, newlines escaped inside
    assert json.loads(line)["v"] == VERSION
    buffer = LineBuffer(1000)
    buffer.feed(line)
    assert decode_from_server(buffer.next_line() or b"") == message


def test_requests_round_trip() -> None:
    request = Request(12, "aliases.add", {"domain": "example.com", "pattern": "sales-.*", "target": "alice"})
    assert decode_request(encode(request).rstrip(b"\n")) == request


@pytest.mark.parametrize("line", [
    b'{"v":1}', b'{"v":1,"hello":[]}', b'{"v":1,"event":3,"data":{}}', b'{"v":1,"event":"X","data":[]}',
    b'{"v":1,"id":1,"error":"text"}', b'{"v":1,"id":"1","error":{"type":"X","message":"m"}}',
], ids=["nothing", "hello", "event-kind", "event-data", "error-text", "error-id"])
def test_a_console_refuses_lines_it_does_not_know(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_from_server(line)


def test_a_console_refuses_another_version() -> None:
    with pytest.raises(UnsupportedVersion):
        decode_from_server(b'{"v":2,"hello":{"versions":[2],"info":{}}}')


def test_no_infinity_on_the_wire() -> None:
    with pytest.raises(ValueError):
        encode(Reply(1, float("inf")))


# -- values ----------------------------------------------------------------------------------

SNAPSHOT = Snapshot("mail.example.com", 1_700_000_000.5,
                    (Listener("smtp", "127.0.0.1", 25, "starttls"), Listener("imaps", "::1", 993, "implicit")),
                    Counters(received=4, delivered=3, queued=1, bounced=0, auth_failures=2), 3, 7,
                    SpaceState(10 << 30, 1 << 30, refusing=False), "AB:CD")
METRICS = MetricsSummary({"smtp": 3, "api": 1}, 3, 1, {"delivered": 1, "deferred": 2, "bounced": 0},
                         {"imap": 2}, {"smtp": 1}, 2, 61.5, 10, 0.05, ((0.001, 2), (0.005, 9), (5.0, 10)),
                         123456789, 1 << 20)


@pytest.mark.parametrize(("tp", "value"), [
    (Snapshot, SNAPSHOT),
    (Snapshot, Snapshot("h", 0.0, (), Counters(), 0, 0)),
    (MetricsSummary, METRICS),
    (ServerInfo, ServerInfo("mail.example.com", "/var/lib/rmail", 42, "0.1.0", True, None)),
    (list[ConnectionView], [ConnectionView(1, "imap", "198.51.100.4", None, True, "IDLE", 1.5, 10, 20)]),
    (QueueView | None, QueueView(3, "", "bob@example.net", 100, 1.0, 2, 3.0, "451 try later")),
    (QueueView | None, None),
    (list[UserView], [UserView("a@example.com", True, 5, 10, 2048, 0)]),
    (Account, Account(1, "alice", "example.com", False)),
    (list[AliasRule], [AliasRule("example.com", 1, "[bold]x[/bold]", "bob")]),
    (ResolveView, ResolveView("x@example.com: delivered to user x@example.com", True)),
    (CertificateView, CertificateView("h", "/k", "[tls]\n", "/etc/rmail.toml", False)),
    (list[str], ["example.com", "example.org"]),
    (bool, True),
    (None, None),
], ids=lambda v: getattr(v, "__name__", None) or type(v).__name__)
def test_values_round_trip_through_json(tp: object, value: object) -> None:
    data = json.loads(json.dumps(values.dump(value)))
    assert values.load(tp, data) == value


def test_events_round_trip_by_name() -> None:
    for event in (LogRecord("WARNING", "rmail.imap", "x", 2.0), MessageReceived("smtp", "a@b", 1, 2, 300),
                  ConnectionUpdated(4, "IDLE", None, True, 1, 2), AliasesChanged("example.com"), ExternalChange()):
        kind = type(event).__name__
        assert values.load(EVENT_TYPES[kind], json.loads(json.dumps(values.dump(event)))) == event


@dataclass(frozen=True)
class Pair:
    n: int
    name: str | None = None


@pytest.mark.parametrize(("tp", "data", "says"), [
    (int, True, "integer"),                  # JSON true is no number
    (int, 1.5, "integer"),
    (float, "1", "number"),
    (str, 3, "string"),
    (bool, 1, "true or false"),
    (list[int], {"a": 1}, "list"),
    (list[int], [1, "2"], "value[1]"),
    (tuple[int, int], [1], "2 items"),
    (dict[str, int], [1], "object"),
    (Pair, {"name": "x"}, "lacks 'n'"),
    (Pair, {"n": "1"}, "value.n"),
    (Pair, [1], "object"),
    (int | None, "x", "matches none"),
], ids=lambda v: repr(v)[:30])
def test_values_that_do_not_fit_are_refused(tp: object, data: object, says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("[", r"\[").replace("]", r"\]")):
        values.load(tp, data)


def test_unknown_fields_are_ignored_within_a_version() -> None:
    """A newer server may add a field; this console reads what it knows."""
    assert values.load(Pair, {"n": 1, "colour": "red"}) == Pair(1)


# -- operations --------------------------------------------------------------------------------

@pytest.mark.parametrize(("op", "args", "says"), [
    ("users.get", {}, "missing argument 'address'"),
    ("users.get", {"address": 3}, "expected a string"),
    ("users.get", {"address": "a@b", "admin": True}, "unknown argument(s): admin"),
    ("users.add", {"address": "a@b", "password": "p", "admin": "yes"}, "true or false"),
    ("queue.retry", {"entry_id": "7"}, "integer"),
    ("users.get", {"address": "a" * 1025}, "longer than 1024"),
])
def test_arguments_are_checked_before_anything_runs(op: str, args: dict, says: str) -> None:
    from rmail.server.core.errors import InvalidInput
    with pytest.raises(InvalidInput) as caught:
        OPS[op].parse_args(args)
    assert says in str(caught.value)


def test_optional_arguments_may_be_left_out() -> None:
    assert OPS["users.add"].parse_args({"address": "a@b", "password": "p"}) == {"address": "a@b", "password": "p"}
    assert OPS["tls.self_signed"].parse_args({}) == {}
    assert OPS["tls.self_signed"].parse_args({"config_path": None}) == {"config_path": None}


def test_every_operation_names_a_service_method() -> None:
    from rmail.server.admin.service import AdminService
    for name, op in OPS.items():
        assert callable(getattr(AdminService, op.method, None)), name
