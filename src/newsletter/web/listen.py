"""The listening socket that ``serve`` and ``preview`` hand to uvicorn.

Binding it ourselves (instead of letting uvicorn do it) means port 0 works, the
URL is known before the server starts, and a taken port is a one-line error.
"""

from __future__ import annotations

import errno
import socket

from newsletter.errors import NewsletterError


def bind_socket(host: str, port: int, *, backlog: int = 128) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0 = a free port), or NewsletterError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: only then does asyncio set TCP_NODELAY on accepted connections,
    # without which each answer (headers and body, two writes) waits for a delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        taken = isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise NewsletterError(
            f"cannot listen on {host}:{port}: {reason}",
            hint="pick another --port (0 picks a free one), or stop the process using it"
            if taken
            else "check --host: an address of this machine, such as 127.0.0.1",
        ) from None
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock
