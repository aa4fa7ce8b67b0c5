"""Benchmark: archive GETs per second from ``newsletter serve``, alone and during a send.

    python bench/bench_archive.py [--recipients 5000] [--seconds 5] [--clients 8]

Builds a throwaway workspace (the sample config, RECIPIENTS subscribers on "main"), sends
one issue to a few readers so the archive has a page, then starts ``newsletter serve``
(its own process) on loopback and a recording SMTP sink (aiosmtpd, in this process).
It fetches the issue's web version from CLIENTS threads for SECONDS and prints GETs per
second; then starts a send of a second issue to every recipient (``newsletter send``,
its own process) against the sink and measures the same GETs while that send runs,
printing the send's messages per second too. Loopback only; everything stops by itself.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
SAMPLE_ISSUE = REPO / "tests" / "golden" / "sample_issue.json"
SECRET = "bench-not-secret"


class Sink:
    """aiosmtpd handler counting messages."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += len(envelope.rcpt_tos)
        return "250 2.0.0 ok"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_workspace(folder: Path, recipients: int) -> Path:
    """The sample config with ``recipients`` members of "main" and two rendered issues."""
    from newsletter.compose.folder import render_issue_folder
    from newsletter.store import Consent, ImportRow, open_store_for
    from newsletter.workspace import load_workspace

    root = folder / "ws"
    root.mkdir()
    config = (REPO / "newsletter.toml").read_text(encoding="utf-8").split("\n[[recurring]]")[0]
    (root / "newsletter.toml").write_text(config, encoding="utf-8")
    ws = load_workspace(root)
    rows = [ImportRow(email=f"reader{n}@example.org") for n in range(recipients)]
    with open_store_for(ws) as store:
        store.import_batch(rows[:3], list_name="early", consent=Consent(source="cli"))
        store.import_batch(rows, list_name="main", consent=Consent(source="cli"))
    for name in ("2026-12-01-first", "2026-12-08-second"):
        issue = ws.issues_dir / name
        issue.mkdir(parents=True)
        shutil.copyfile(SAMPLE_ISSUE, issue / "issue.json")
        render_issue_folder(ws, issue)
    return root


def run_cli(root: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """``newsletter -w root ARGS`` as its own process, its output in a file beside the
    workspace (a pipe nobody reads would fill up and stall a chatty process)."""
    command = [sys.executable, "-m", "newsletter", "-w", str(root), *args]
    log = (root.parent / f"{args[0]}.log").open("ab")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def hammer(
    url: str, clients: int, seconds: float, until: threading.Event | None
) -> tuple[float, list[str]]:
    """GET ``url`` from ``clients`` threads for ``seconds`` (or until ``until``) ->
    (answered GETs per second, the failures seen)."""
    counts = [0] * clients
    failures: list[str] = []
    deadline = time.monotonic() + seconds

    def worker(slot: int) -> None:
        with httpx.Client(timeout=10) as client:
            while time.monotonic() < deadline and not (until and until.is_set()):
                try:
                    answer = client.get(url)
                except httpx.HTTPError as exc:
                    failures.append(f"{type(exc).__name__} after {time.monotonic():.1f}")
                    continue
                if answer.status_code != 200:
                    failures.append(str(answer.status_code))
                counts[slot] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started), failures


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    from aiosmtpd.controller import Controller

    sink = Sink()
    smtp_port, web_port = free_port(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    env = {
        **os.environ,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "PYTHONPATH": str(REPO / "src"),
    }
    os.environ["NEWSLETTER_SECRET_KEY"] = SECRET
    with tempfile.TemporaryDirectory() as tmp:
        root = make_workspace(Path(tmp), args.recipients)
        first = run_cli(
            root, env, "send", str(root / "issues/2026-12-01-first"), "--list", "early", "--yes"
        )
        if first.wait(120):
            sys.exit((root.parent / "send.log").read_text(encoding="utf-8", errors="replace"))
        config = root / "newsletter.toml"
        config.write_text(
            config.read_text(encoding="utf-8") + '\n[archive]\nlists = ["early", "main"]\n',
            encoding="utf-8",
        )
        serve = run_cli(root, env, "serve", "--port", str(web_port))
        url = f"http://127.0.0.1:{web_port}/archive/2026-12-01-first/"
        try:
            for _ in range(200):  # up to 20 s for serve to start
                try:
                    if httpx.get(url, timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            alone, failed = hammer(url, args.clients, args.seconds, None)
            print(f"archive GETs alone:        {alone:8.0f} /s ({args.clients} clients)")
            print(f"  failures: {len(failed)} {failed[:3]}")
            before = sink.count
            sending = run_cli(root, env, "send", str(root / "issues/2026-12-08-second"), "--yes")
            done = threading.Event()
            threading.Thread(target=lambda: (sending.wait(600), done.set()), daemon=True).start()
            started = time.monotonic()
            during, failed = hammer(url, args.clients, args.seconds, done)
            print(f"archive GETs during a send: {during:7.0f} /s")
            print(f"  failures: {len(failed)} {failed[:3]}")
            sending.wait(600)
            took = time.monotonic() - started
            sent = sink.count - before
            print(f"the send: {sent} messages in {took:.1f} s ({sent / took:.0f} /s)")
        finally:
            serve.terminate()
            serve.wait(30)
            controller.stop()


if __name__ == "__main__":
    main()
