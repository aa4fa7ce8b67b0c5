"""The recording SMTP sink of bench_unsubscribe, in a process of its own.

    python bench/smtp_recorder.py LOG PORT EVERY

Accepts every message on 127.0.0.1:PORT (aiosmtpd) and notes ``time rcpt`` per RCPT TO;
prints ``ready`` once listening and ``count N`` every EVERY recipients; on
stdin's end writes the notes to LOG and exits. ``start_sink`` / ``stop_sink`` /
``wait_for_sink`` drive it from the benchmark.
"""

from __future__ import annotations

import selectors
import subprocess
import sys
import time
from pathlib import Path

PROGRESS_EVERY = 500


def start_sink(log_path: Path, port: int, *, every: int = PROGRESS_EVERY) -> subprocess.Popen[str]:
    """The recording SMTP sink on ``port``, in its own process, once it listens; it
    reports its count every ``every`` recipients."""
    proc = subprocess.Popen(
        [sys.executable, __file__, str(log_path), str(port), str(every)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit("the SMTP sink did not start")
    return proc


def stop_sink(proc: subprocess.Popen[str]) -> None:
    """Close the sink's stdin (its signal to write the log and exit) and wait."""
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=60)


def wait_for_sink(proc: subprocess.Popen[str], count: int, timeout: float = 120.0) -> bool:
    """Wait until the sink reports ``count`` recipients (a multiple of its ``every``)
    -> reached?"""
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    end = time.monotonic() + timeout
    while time.monotonic() < end and selector.select(timeout=end - time.monotonic()):
        line = proc.stdout.readline()
        if not line:
            return False
        if line.startswith("count ") and int(line.split()[1]) >= count:
            return True
    return False


def run_sink(log_path: Path, port: int, every: int) -> None:
    """Accept every message, note ``time rcpt`` per RCPT TO; stop on stdin's end."""
    from aiosmtpd.controller import Controller

    records: list[tuple[float, str]] = []

    class Recorder:
        async def handle_RCPT(
            self, server: object, session: object, envelope: object, address: str, options: object
        ) -> str:
            records.append((time.time(), address.lower()))
            envelope.rcpt_tos.append(address)  # type: ignore[attr-defined]
            if len(records) % every == 0:
                print(f"count {len(records)}", flush=True)
            return "250 OK"

        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 2.0.0 taken"

    controller = Controller(Recorder(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()
    with open(log_path, "w", encoding="ascii") as handle:
        for stamp, address in records:
            handle.write(f"{stamp:.6f} {address}\n")


if __name__ == "__main__":
    run_sink(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
