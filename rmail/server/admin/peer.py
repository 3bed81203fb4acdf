"""Who is on the other end of the admin socket (SO_PEERCRED), and whether they may be."""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

_UCRED = struct.Struct("3i")       # struct ucred {pid_t pid; uid_t uid; gid_t gid;} (Linux)


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> PeerCredentials | None:
    """The credentials the kernel recorded when the peer connected; None where the platform
    has no SO_PEERCRED (the socket's 0600 mode and the 0700 data dir are then the only guard)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, option, _UCRED.size))
    return PeerCredentials(pid, uid, gid)


def refusal(creds: PeerCredentials | None, server_uid: int | None = None) -> str | None:
    """Why a peer may not use the admin socket, or None when it may: only the server's own
    user may, not even root (root can become that user: ``sudo -u USER rmail console``)."""
    uid = os.geteuid() if server_uid is None else server_uid
    if creds is None or creds.uid == uid:
        return None
    return (f"uid {creds.uid} may not use this server's admin socket; run the console as the server's "
            f"user (uid {uid}), e.g. sudo -u '#{uid}' rmail console")
