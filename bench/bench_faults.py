"""Fault run: a real send against a local SMTP server that misbehaves, then a count.

    python bench/bench_faults.py [--n 2000] [--connections 4] [--drop-rate 0.02] [--seed 7]

The server is aiosmtpd on 127.0.0.1 (in this process, its own thread). It answers
``421 4.3.2`` (and closes the connection) to every tenth message it is offered, and now
and then drops the connection without a word: with probability ``--drop-rate`` at RCPT
(before any data: nothing taken) and with the same probability right after storing a
message (the data was taken, the reply never leaves). It stores every message it
takes, with its recipient.

The sender is the real ``deliver.send_issue`` in ONE invocation (4 connections, the
default in-run reconnect backoff), on a workspace made like bench_send.py's with N
subscribers and a one-teaser message (~23 KB on the wire). Afterwards it prints what
the server injected and what it holds: recipients delivered, missed (must be 0),
duplicates, and the ledger's counts (sent, unknown = "maybe delivered", deferred,
failed). A drop after the data is recorded ``unknown`` and not resent, so it causes
no duplicate; the figures show it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from bench_send import BENCH_KEY, compose_sized, copy_sample, populate


class FaultyHandler:
    """Stores what it takes; 421 to every tenth message; random drops."""

    def __init__(self, drop_rate: float, seed: int) -> None:
        self.random = random.Random(seed)
        self.drop_rate = drop_rate
        self.lock = threading.Lock()
        self.offered = 0
        self.stored: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.lock:
            drop = self.random.random() < self.drop_rate
            if drop:
                self.injected["drop before data"] += 1
        if drop:
            assert server.transport is not None
            server.transport.close()
            return "250 never seen"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        transport = server.transport
        assert transport is not None
        with self.lock:
            self.offered += 1
            if self.offered % 10 == 0:
                self.injected["421 (every tenth message)"] += 1
                asyncio.get_running_loop().call_soon(transport.close)
                return "421 4.3.2 too busy, try again later"
            self.stored[envelope.rcpt_tos[0]] += 1
            drop = self.random.random() < self.drop_rate
            if drop:
                self.injected["drop after data taken"] += 1
        if drop:
            transport.close()
            return "250 never seen"
        return "250 OK stored"


class FaultyServer(Controller):
    def __init__(self, handler: FaultyHandler) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=0)
        self.connections = 0

    def factory(self) -> SMTP:
        self.connections += 1
        return SMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        server: Any = self.server
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--drop-rate", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    os.environ["NEWSLETTER_SECRET_KEY"] = BENCH_KEY

    from newsletter.deliver import send_issue
    from newsletter.store import open_store_for
    from newsletter.workspace import load_workspace

    with tempfile.TemporaryDirectory(prefix="bench-faults-") as temp:
        root = Path(temp) / "ws"
        copy_sample(root)
        wire = compose_sized(root, 10_000)
        populate(root, args.n)
        ws = load_workspace(root)
        with open_store_for(ws) as store:
            expected = {r.email for r in store.iter_recipients("main")}
        handler = FaultyHandler(args.drop_rate, args.seed)
        server = FaultyServer(handler)
        server.start()
        server.connections = 0
        try:
            started = time.perf_counter()
            report = send_issue(
                ws,
                root / "issues" / "base",
                smtp_url=f"smtp://127.0.0.1:{server.port}",
                connections=args.connections,
            )
            seconds = time.perf_counter() - started
        finally:
            server.stop()
    delivered = set(handler.stored)
    missed = expected - delivered
    duplicates = sum(count - 1 for count in handler.stored.values())
    print(
        f"recipients={args.n} message_bytes={wire} connections={args.connections} "
        f"secs={seconds:.1f} server_sessions={server.connections}"
    )
    print("injected: " + ", ".join(f"{k}={v}" for k, v in sorted(handler.injected.items())))
    print(
        f"server holds: delivered={len(delivered)} missed={len(missed)} "
        f"duplicates={duplicates} messages={sum(handler.stored.values())}"
    )
    print(f"ledger: {report.counts()} state={report.state}")
    if missed or report.failed or report.deferred:
        sys.exit(1)


if __name__ == "__main__":
    main()
