"""Free-port probing, and checking which process listens on a port."""

from __future__ import annotations

import socket

import psutil


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now. Another process may still take it before the server binds:
    the manager retries with a new port when the bind fails."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def listens_on(pid: int, port: int) -> bool | None:
    """True if process `pid` holds a listening socket on `port`, False if not, None if we cannot tell."""
    try:
        conns = psutil.Process(pid).net_connections(kind="inet")
    except psutil.NoSuchProcess:
        return False
    except (psutil.AccessDenied, AttributeError):
        return None
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns)
