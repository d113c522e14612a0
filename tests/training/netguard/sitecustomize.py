"""Loaded by every Python process started with this folder on PYTHONPATH: any connection to a
non-local address fails as an unreachable network would, and is written to $DSGEN_NETGUARD_LOG."""

import os
import socket

_LOG = os.environ.get("DSGEN_NETGUARD_LOG")


def _local(host: object) -> bool:
    return host is None or str(host) in ("localhost", "::1", "", "0.0.0.0") or str(host).startswith("127.")


def _record(what: str) -> None:
    if _LOG:
        with open(_LOG, "a") as f:
            f.write(what + "\n")


_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def connect(self: socket.socket, address: object) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):  # type: ignore[index]
        _record(f"connect {address}")
        raise OSError(101, "Network is unreachable (test guard)")
    return _connect(self, address)


def connect_ex(self: socket.socket, address: object) -> int:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):  # type: ignore[index]
        _record(f"connect_ex {address}")
        return 101
    return _connect_ex(self, address)


def getaddrinfo(host: object, *args: object, **kwargs: object):  # noqa: ANN201
    if not _local(host):
        _record(f"resolve {host}")
        raise socket.gaierror(socket.EAI_NONAME, "Name resolution disabled (test guard)")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = connect  # type: ignore[method-assign]
socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
socket.getaddrinfo = getaddrinfo
