"""The loopback SMTP relay of bench_senders.py, one process per sender.

    python bench/senders_relay.py --port PORT [--reply-ms 20]

Accepts every message (PIPELINING offered) and answers each REPLY_MS after its data, like
a relay across a network; counts the copies per recipient. Each line on stdin prints the
counts taken since the last one as JSON; end of input stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import threading
from collections import Counter
from typing import Any

import psutil


def run_relay(port: int, reply_ms: float) -> None:
    """Relay mode: accept every message, answer it ``reply_ms`` after its data; count the
    recipients; each line on stdin prints the counts as JSON and starts again; EOF stops."""
    from aiosmtpd.controller import Controller

    counts: Counter[str] = Counter()
    lock = threading.Lock()

    class Handler:
        async def handle_EHLO(
            self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
        ) -> list[str]:
            session.host_name = hostname
            return [*responses[:-1], "250-PIPELINING", responses[-1]]

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            if reply_ms > 0:
                await asyncio.sleep(reply_ms / 1000)
            with lock:
                counts.update(address.lower() for address in envelope.rcpt_tos)
            return "250 2.0.0 taken"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    for _line in sys.stdin:
        with lock:
            taken = dict(counts)
            counts.clear()
        print(json.dumps(taken), flush=True)
    controller.stop()


class Relay:
    """A relay process of ``run_relay`` on a free loopback port."""

    def __init__(self, reply_ms: float) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        command = [sys.executable, __file__, "--port", str(port), "--reply-ms", str(reply_ms)]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        if self.stdout.readline().strip() != "ready":
            raise SystemExit("an SMTP relay did not start")
        self.url = f"smtp://127.0.0.1:{port}"
        self.ps = psutil.Process(self.proc.pid)

    def take_counts(self) -> Counter[str]:
        """Copies per address taken since the last call."""
        self.stdin.write("counts\n")
        self.stdin.flush()
        return Counter(json.loads(self.stdout.readline()))

    def cpu(self) -> float:
        """CPU seconds the relay has used."""
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        """Close stdin (its signal to stop) and wait."""
        self.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--reply-ms", type=float, default=20.0)
    options = parser.parse_args()
    run_relay(options.port, options.reply_ms)
