"""What the admin service answers with, besides the core's own values (``Account``,
``AliasRule``, ``Snapshot``, ``MetricsSummary``): plain frozen dataclasses that cross the
admin socket as they are (``values.dump``/``values.load``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What a console shows about the server it talks to; sent in the protocol's hello."""

    hostname: str
    data_dir: str
    pid: int
    version: str
    tls_configured: bool
    config_source: str | None      #: the config file the server read, if any


@dataclass(frozen=True, slots=True)
class ConnectionView:
    id: int
    protocol: str
    peer: str
    user: str | None
    tls: bool
    state: str
    since: float
    bytes_in: int
    bytes_out: int


@dataclass(frozen=True, slots=True)
class QueueView:
    id: int
    sender: str
    recipient: str
    size: int
    created: float
    attempts: int
    next_attempt: float
    last_error: str


@dataclass(frozen=True, slots=True)
class UserView:
    address: str
    admin: bool
    mailboxes: int
    messages: int
    size: int                       #: bytes stored
    quota: int                      #: the user's limit in bytes (core.quota.UNLIMITED: none)


@dataclass(frozen=True, slots=True)
class ResolveView:
    """A dry run of alias resolution, in the resolver's own words."""

    text: str
    delivered: bool                 #: a user would get the mail
