"""A real aiosmtpd server for tests: a free loopback port, and a count of client connections."""

from __future__ import annotations

from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


class CountingController(Controller):
    """aiosmtpd on 127.0.0.1 (port 0: the OS picks) that counts the connections clients open.

    ``smtp_class`` lets a test speak through its own SMTP subclass (scripted replies).
    """

    smtp_class: type[SMTP] = SMTP

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=0, **kwargs)
        self.connections = 0

    def factory(self) -> SMTP:
        self.connections += 1
        return self.smtp_class(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # port 0 was asked for: learn the real one before the Controller probes it
        server: Any = self.server
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()

    def start(self) -> None:
        super().start()
        self.connections = 0  # forget the Controller's own start-up probe
