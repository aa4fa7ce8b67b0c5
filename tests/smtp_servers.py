"""Real aiosmtpd servers for tests: a free loopback port, a count of client connections,
and a scripted one that answers MAIL, RCPT and DATA as a test tells it to (4xx, 5xx,
421, dropped connections, a server that never answers) and records what it received."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from newsletter.smtp.embedded import free_port_controller
from newsletter.smtp.settings import TLS_NONE, SmtpSettings


class CountingController(free_port_controller()):
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

    def start(self) -> None:
        super().start()
        self.connections = 0  # forget the Controller's own start-up probe


SENDER = "bounces+1-abc@harbour.example.org"
MESSAGE = (
    b"From: Harbour <letter@harbour.example.org>\r\n"
    b"To: <a@example.net>\r\n"
    b"Subject: test\r\n"
    b"\r\n"
    b"Hello.\r\n"
    b".a line starting with a dot\r\n"
    b"..and two\r\n"
    b"the end\r\n"
)
DROP, HANG, CLOSE_AFTER = "DROP", "HANG", "CLOSE-AFTER"  # scripted actions, not replies


class ScriptedHandler:
    """aiosmtpd handler whose replies the test scripts; records what it received."""

    def __init__(self, *, pipelining: bool = True) -> None:
        self.pipelining = pipelining
        self.mail_script: deque[str] = deque()  # one entry per MAIL, then "250 OK"
        self.rcpt_replies: dict[str, str] = {}  # address -> reply or DROP
        self.data_script: deque[str] = deque()  # one entry per message, then "250 OK"
        self.data_command_reply: str | None = None  # answer DATA itself (before 354)
        self.received: list[tuple[str, list[str], bytes]] = []
        self.auth_attempts: list[tuple[str, str]] = []
        self.release = threading.Event()  # ends a HANG

    def _act(self, server: SMTP, reply: str) -> str:
        transport = server.transport
        assert transport is not None
        if reply == DROP:
            transport.close()
            return "250 never seen"
        if reply.startswith("421") or reply == CLOSE_AFTER:
            # send the reply first, then close, like a server shutting the session
            asyncio.get_running_loop().call_soon(transport.close)
        return "250 OK closing" if reply == CLOSE_AFTER else reply

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        extra = ["250-PIPELINING"] if self.pipelining else []
        return [*responses[:-1], *extra, responses[-1]]

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self.mail_script.popleft() if self.mail_script else "250 OK"
        if reply.startswith("250"):
            envelope.mail_from = address
            envelope.mail_options.extend(options)
        return self._act(server, reply)

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address, "250 OK")
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return self._act(server, reply)

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        self.received.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        )
        reply = self.data_script.popleft() if self.data_script else "250 OK"
        if reply == HANG:
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
            return "250 OK late"
        return self._act(server, reply)

    def authenticate(
        self, server: SMTP, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        self.auth_attempts.append((login, password))
        return AuthResult(success=(login, password) == ("news", "p@ss:w/rd%"), handled=False)


class ScriptedSMTP(SMTP):
    async def smtp_DATA(self, arg: str) -> None:
        reply = self.event_handler.data_command_reply
        if reply is not None and self.envelope is not None and self.envelope.rcpt_tos:
            await self.push(reply)
            return
        await super().smtp_DATA(arg)


class ScriptedController(CountingController):
    """The counting loopback server, speaking through ScriptedSMTP."""

    smtp_class = ScriptedSMTP


StartServer = Callable[..., CountingController]


def plain(controller: CountingController, **kwargs: Any) -> SmtpSettings:
    """Plain-SMTP client settings for ``controller`` (timeout 5 s unless given)."""
    options: dict[str, Any] = {"timeout": 5.0, **kwargs}
    return SmtpSettings(host="127.0.0.1", port=controller.port, security=TLS_NONE, **options)
