"""Fixtures of the delivery tests: the loopback SMTP servers and an issue folder."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP

from ledger_server import (
    GreetingSMTP,
    LedgerHandler,
    LedgerServer,
    write_issue,
)
from newsletter.workspace import Workspace


@pytest.fixture
def server() -> Iterator[LedgerServer]:
    controller = LedgerServer(LedgerHandler())
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture
def issue(ws: Workspace) -> Path:
    return write_issue(ws.root)


@pytest.fixture
def greeting_server() -> Iterator[LedgerServer]:
    class Greeting(GreetingSMTP):
        # its own counters and events for this test
        transacting: set[SMTP] = set()  # noqa: RUF012
        all_transacting = asyncio.Event()

    controller = LedgerServer(LedgerHandler())
    controller.smtp_class = Greeting
    controller.start()
    Greeting.greeted = 0  # forget the Controller's own start-up probe
    yield controller
    controller.stop()
