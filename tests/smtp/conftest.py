"""Fixtures of the SMTP tests: scripted loopback servers, both PIPELINING modes, a test CA."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from smtp_servers import CountingController, ScriptedController, ScriptedHandler, StartServer


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start scripted servers (handler and aiosmtpd options as given); all stop at the end."""
    controllers: list[CountingController] = []

    def start(handler: ScriptedHandler | None = None, **kwargs: Any) -> CountingController:
        controller = ScriptedController(handler or ScriptedHandler(), **kwargs)
        controller.start()
        controllers.append(controller)
        return controller

    yield start
    for controller in controllers:
        controller.handler.release.set()
        controller.stop()


@pytest.fixture(params=[True, False], ids=["pipelining", "no-pipelining"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    """Every test asking for it runs with and without ESMTP PIPELINING."""
    return bool(request.param)


@pytest.fixture(scope="module")
def tls() -> Iterator[tuple[trustme.CA, ssl.SSLContext, ssl.SSLContext]]:
    """A test CA, a server context for 127.0.0.1, and one for a name that does not match."""
    ca = trustme.CA()
    good = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(good)
    wrong_name = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mail.example.org").configure_cert(wrong_name)
    yield ca, good, wrong_name


@pytest.fixture
def cafile(tls: tuple[trustme.CA, ssl.SSLContext, ssl.SSLContext], tmp_path: Path) -> str:
    """The test CA's certificate as a PEM file, for ``?cafile=``."""
    path = tmp_path / "test-ca.pem"
    tls[0].cert_pem.write_to_path(str(path))
    return str(path)
