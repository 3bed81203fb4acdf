"""A loopback DNS server for tests: UDP and TCP on one 127.0.0.1 port, answering from records
the test writes (``add``) or loads in zone-file form (``load_zone``, e.g. the output of
``run.py dns``). Built on dnspython's message code, which rmail already depends on.

Semantics are those a resolver relies on: a name with no records at all (and no records
below it) is NXDOMAIN; a name that exists without the asked type is an empty NOERROR; CNAMEs
inside the data are followed. A UDP answer larger than the client's EDNS size (512 without
EDNS) comes back truncated (TC), so the client retries over TCP, as with a real server.
``servfail`` and ``drop`` make a name fail or time out. Every query is counted per
(name, type), so tests can assert how many lookups were made.
"""

from __future__ import annotations

import collections
import socket
import socketserver
import struct
import threading
from typing import Iterable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

__all__ = ["DNSServer", "shared_server"]

#: CNAME hops followed inside the data (a loop in a test zone must not hang the server).
MAX_CNAME = 8


def _name(text: str | dns.name.Name) -> dns.name.Name:
    return text if isinstance(text, dns.name.Name) else dns.name.from_text(text.rstrip(".") + ".")


class DNSServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[dns.name.Name, int], list[tuple[int, dns.rdata.Rdata]]] = {}
        self.servfail: set[dns.name.Name] = set()
        self.drop: set[dns.name.Name] = set()
        self.queries: collections.Counter[tuple[str, str]] = collections.Counter()
        self.tcp_queries = 0
        self._udp: socketserver.UDPServer | None = None
        self._tcp: socketserver.TCPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- the data ---------------------------------------------------------------------------------

    def add(self, name: str, rdtype: str, *values: str, ttl: int = 60) -> None:
        """Add records, e.g. ``add("a.test", "MX", "10 mail.a.test.")``; TXT values are
        given as zone-file text (quoted strings), or as plain text which is quoted here."""
        owner = _name(name)
        kind = dns.rdatatype.from_text(rdtype)
        with self._lock:
            bucket = self._records.setdefault((owner, kind), [])
            for value in values:
                if kind == dns.rdatatype.TXT and not value.lstrip().startswith('"'):
                    value = " ".join('"' + value[i:i + 255].replace("\\", "\\\\").replace('"', '\\"') + '"'
                                     for i in range(0, max(len(value), 1), 255))
                bucket.append((ttl, dns.rdata.from_text(dns.rdataclass.IN, kind, value)))

    def load_zone(self, text: str, origin: str = ".") -> None:
        """Add every record of a zone file (no SOA needed); names relative to ``origin``."""
        zone = dns.zone.from_text(text, origin=_name(origin), relativize=False, check_origin=False)
        with self._lock:
            for owner, node in zone.nodes.items():
                for rdataset in node.rdatasets:
                    bucket = self._records.setdefault((owner, rdataset.rdtype), [])
                    bucket.extend((rdataset.ttl, rd) for rd in rdataset)

    def remove(self, name: str, rdtype: str | None = None) -> None:
        owner = _name(name)
        with self._lock:
            for key in [k for k in self._records if k[0] == owner and (rdtype is None or
                                                                        k[1] == dns.rdatatype.from_text(rdtype))]:
                del self._records[key]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self.servfail.clear()
            self.drop.clear()
            self.queries.clear()
            self.tcp_queries = 0

    # -- answering --------------------------------------------------------------------------------

    def _exists(self, name: dns.name.Name) -> bool:
        return any(owner == name or owner.is_subdomain(name) for owner, _ in self._records)

    def answer(self, wire: bytes, max_size: int | None) -> bytes | None:
        """The reply to one query in wire form (None: stay silent, the client times out)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        name, rdtype = question.name, question.rdtype
        with self._lock:
            self.queries[(name.to_text(omit_final_dot=True).lower(), dns.rdatatype.to_text(rdtype))] += 1
            if name in self.drop:
                return None
            if name in self.servfail:
                response.set_rcode(dns.rcode.SERVFAIL)
                return response.to_wire()
            current = name
            for _ in range(MAX_CNAME):
                found = self._records.get((current, rdtype))
                if found:
                    response.answer.append(self._rrset(current, rdtype, found))
                    break
                alias = self._records.get((current, dns.rdatatype.CNAME))
                if not alias or rdtype == dns.rdatatype.CNAME:
                    if not response.answer and not self._exists(current):
                        response.set_rcode(dns.rcode.NXDOMAIN)
                    break
                response.answer.append(self._rrset(current, dns.rdatatype.CNAME, alias))
                current = alias[0][1].target
        if max_size is None:
            return response.to_wire()
        limit = max(query.payload, 512) if query.edns >= 0 else 512
        try:
            return response.to_wire(max_size=min(limit, max_size))
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.TC | dns.flags.AA
            return truncated.to_wire()

    @staticmethod
    def _rrset(name: dns.name.Name, rdtype: int, items: Iterable[tuple[int, dns.rdata.Rdata]]) -> dns.rrset.RRset:
        items = list(items)
        rrset = dns.rrset.RRset(name, dns.rdataclass.IN, rdtype)
        for ttl, rd in items:
            rrset.add(rd, ttl)
        return rrset

    # -- sockets ------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._udp is not None
        return self._udp.server_address[1]

    @property
    def address(self) -> str:
        """``[dns] nameserver`` for a config: ``"127.0.0.1:PORT"``."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> DNSServer:
        server = self

        class UDPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                reply = server.answer(data, 65535)
                if reply is not None:
                    sock.sendto(reply, self.client_address)

        class TCPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                sock.settimeout(5)
                try:
                    while True:
                        head = _recv_exact(sock, 2)
                        if head is None:
                            return
                        data = _recv_exact(sock, struct.unpack("!H", head)[0])
                        if data is None:
                            return
                        with server._lock:
                            server.tcp_queries += 1
                        reply = server.answer(data, None)
                        if reply is None:
                            return
                        sock.sendall(struct.pack("!H", len(reply)) + reply)
                except OSError:
                    return

        for _ in range(20):
            udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), UDPHandler)
            try:
                tcp = socketserver.ThreadingTCPServer(("127.0.0.1", udp.server_address[1]), TCPHandler,
                                                      bind_and_activate=False)
                tcp.allow_reuse_address = True
                tcp.daemon_threads = True
                tcp.server_bind()
                tcp.server_activate()
            except OSError:
                udp.server_close()
                continue
            break
        else:
            raise RuntimeError("no port free for both UDP and TCP")
        udp.daemon_threads = True
        self._udp, self._tcp = udp, tcp
        for srv in (udp, tcp):
            thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                                      name="test-dns", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for srv in (self._udp, self._tcp):
            if srv is not None:
                srv.shutdown()
                srv.server_close()
        for thread in self._threads:
            thread.join(5)
        self._threads.clear()

    def __enter__(self) -> DNSServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


_shared: DNSServer | None = None
_shared_lock = threading.Lock()


def shared_server() -> DNSServer:
    """One empty server for the whole test process: every runtime built by ``make_config``
    resolves through it unless the test gives its own, so no test ever asks the real DNS.
    Nothing may be added to it (tests that need records start their own)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = DNSServer().start()
        return _shared
