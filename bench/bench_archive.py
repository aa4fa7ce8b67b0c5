"""Benchmark: archive GETs from ``newsletter serve`` must not slow a send or one-click.

    python bench/bench_archive.py [--recipients 5000] [--seconds 5] [--clients 8]
                                  [--posts 200] [--max-seconds 300]

Builds a throwaway workspace (the sample config, RECIPIENTS subscribers on "main", 3 x
POSTS others on "leavers"), sends one issue to a few readers so the archive has a page,
then starts ``newsletter serve`` (its own process) on loopback and a recording SMTP sink
(aiosmtpd, its own process too). It prints, in turn:

- archive GETs per second from CLIENTS threads for SECONDS, alone;
- one-click unsubscribe POST latency (p50/p99, one client, up to POSTS distinct leavers),
  alone and then during SECONDS of the same archive load;
- a send of a second issue to every recipient (``newsletter send``, its own process),
  alone: messages per second from the sink's first to its last message;
- a send of a third issue while the archive load runs (until the send ends, at most
  MAX_SECONDS) and one-click POSTs go on: the GETs per second, the send's messages per
  second and the POST latency during it.

Every loop is bounded (a token list, a deadline); loopback only; everything stops by itself.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
SAMPLE_ISSUE = REPO / "tests" / "golden" / "sample_issue.json"
SECRET = "bench-not-secret"
ISSUES = ("2026-12-01-first", "2026-12-08-second", "2026-12-15-third")
ONE_CLICK = b"List-Unsubscribe=One-Click"
FORM = {"content-type": "application/x-www-form-urlencoded"}


class Sink:
    """A recording SMTP sink in its own process (so this process's GET threads cannot
    slow its answers): one "monotonic-time recipients" line per message in ``log``."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.port = free_port()
        self._mark = 0
        command = [sys.executable, __file__, "--sink-port", str(self.port), "--sink-log", str(log)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            sys.exit("the SMTP sink did not start")

    def reset(self) -> None:
        """Forget what came so far (before timing the next send)."""
        self._mark = len(self._lines())

    def _lines(self) -> list[str]:
        return self.log.read_text(encoding="ascii").splitlines() if self.log.exists() else []

    def rate(self) -> str:
        """What came since ``reset``, as "N messages in S s (R /s)", first to last message."""
        lines = [line.split() for line in self._lines()[self._mark :]]
        if not lines:
            return "no messages"
        count = sum(int(recipients) for _, recipients in lines)
        span = float(lines[-1][0]) - float(lines[0][0])
        per_second = count / span if span > 0 else 0.0
        return f"{count} messages in {span:.1f} s ({per_second:.0f} /s)"

    def stop(self) -> None:
        """End the sink process."""
        self.process.terminate()
        self.process.wait(30)


def run_sink(port: int, log: Path) -> None:
    """Sink mode (a child process): aiosmtpd on 127.0.0.1:``port`` until terminated."""
    from aiosmtpd.controller import Controller

    out = log.open("a", encoding="ascii", buffering=1)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            out.write(f"{time.monotonic():.6f} {len(envelope.rcpt_tos)}\n")
            return "250 2.0.0 ok"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    threading.Event().wait()


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_workspace(folder: Path, recipients: int, leavers: int) -> tuple[Path, list[str]]:
    """The sample config with ``recipients`` members of "main", ``leavers`` members of
    "leavers" and three rendered issues -> (root, one unsubscribe URL path per leaver)."""
    from newsletter.compose.folder import render_issue_folder
    from newsletter.mail.tokens import UnsubscribeTokens, unsubscribe_url
    from newsletter.store import Consent, ImportRow, open_store_for
    from newsletter.workspace import load_workspace

    root = folder / "ws"
    root.mkdir()
    config = (REPO / "newsletter.toml").read_text(encoding="utf-8").split("\n[[recurring]]")[0]
    (root / "newsletter.toml").write_text(config, encoding="utf-8")
    ws = load_workspace(root)
    rows = [ImportRow(email=f"reader{n}@example.org") for n in range(recipients)]
    leaving = [ImportRow(email=f"leaver{n}@example.org") for n in range(leavers)]
    with open_store_for(ws) as store:
        store.import_batch(rows[:3], list_name="early", consent=Consent(source="cli"))
        store.import_batch(rows, list_name="main", consent=Consent(source="cli"))
        store.import_batch(leaving, list_name="leavers", consent=Consent(source="cli"))
        list_id = store.list_id("leavers")
        members = [(r.id, r.email) for r in store.iter_recipients("leavers")]
    assert list_id is not None
    tokens = UnsubscribeTokens((SECRET,))
    paths = [
        unsubscribe_url("", tokens.make(sid, list_id, email=address)) for sid, address in members
    ]
    for name in ISSUES:
        issue = ws.issues_dir / name
        issue.mkdir(parents=True)
        shutil.copyfile(SAMPLE_ISSUE, issue / "issue.json")
        render_issue_folder(ws, issue)
    return root, paths


def run_cli(root: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """``newsletter -w root ARGS`` as its own process, its output in a file beside the
    workspace (a pipe nobody reads would fill up and stall a chatty process)."""
    command = [sys.executable, "-m", "newsletter", "-w", str(root), *args]
    log = (root.parent / f"{args[0]}.log").open("ab")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def hammer(
    url: str, clients: int, seconds: float, until: threading.Event | None, rate: float = 0.0
) -> tuple[float, list[str]]:
    """GET ``url`` from ``clients`` threads for ``seconds`` (or until ``until``), at most
    ``rate`` GETs per second in all (0: as fast as they answer) -> (answered GETs per
    second, the failures seen)."""
    counts = [0] * clients
    failures: list[str] = []
    deadline = time.monotonic() + seconds
    # each client paces itself to its share of the rate: a steady load, not a flood
    interval = clients / rate if rate > 0 else 0.0

    def worker(slot: int) -> None:
        next_at = time.monotonic() + slot * interval / clients
        with httpx.Client(timeout=10) as client:
            while time.monotonic() < deadline and not (until and until.is_set()):
                if interval:
                    time.sleep(max(0.0, next_at - time.monotonic()))
                    next_at += interval
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


@dataclass
class Posts:
    """One-click POSTs made: their latencies in milliseconds and the failures seen."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """ "N POSTs, p50 X ms, p99 Y ms, failures F"."""
        if not self.latencies:
            return f"no POST answered; failures {len(self.failures)} {self.failures[:3]}"
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * len(ordered)) - 1)]
        return (
            f"{len(ordered)} POSTs, p50 {statistics.median(ordered):.1f} ms, "
            f"p99 {p99:.1f} ms, max {ordered[-1]:.1f} ms; "
            f"failures {len(self.failures)} {self.failures[:3]}"
        )


def one_clicks(base: str, paths: Sequence[str], stop: threading.Event | None = None) -> Posts:
    """RFC 8058 one-click POST to each of ``paths`` in turn from one client, until they
    run out or ``stop`` is set -> their latencies (each path unsubscribes one leaver)."""
    posts = Posts()
    with httpx.Client(base_url=base, timeout=10) as client:
        for path in paths:
            if stop is not None and stop.is_set():
                break
            started = time.perf_counter()
            try:
                answer = client.post(path, content=ONE_CLICK, headers=FORM)
            except httpx.HTTPError as exc:
                posts.failures.append(type(exc).__name__)
                continue
            posts.latencies.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 200:
                posts.failures.append(str(answer.status_code))
    return posts


def under_load(
    url: str, args: argparse.Namespace, paths: Sequence[str], until: threading.Event | None
) -> tuple[float, list[str], Posts]:
    """The archive load (``hammer``) with one-click POSTs beside it that stop when the
    load stops -> (GETs per second, GET failures, the POSTs)."""
    load_over = threading.Event()
    posts: list[Posts] = []
    base = url.split("/archive/")[0]
    poster = threading.Thread(target=lambda: posts.append(one_clicks(base, paths, load_over)))
    poster.start()
    try:
        rate, failures = hammer(url, args.clients, args.seconds, until, args.rate)
    finally:
        load_over.set()
        poster.join()
    return rate, failures, posts[0] if posts else Posts(failures=["the POST thread failed"])


def timed_send(
    root: Path,
    env: dict[str, str],
    sink: Sink,
    issue: str,
    during: Callable[[threading.Event], Any],
) -> Any:
    """``newsletter send issues/ISSUE --yes`` to "main"; ``during(done)`` runs in this
    thread meanwhile (``done`` is set when the send ends) -> what ``during`` returned."""
    sink.reset()
    sending = run_cli(root, env, "send", str(root / "issues" / issue), "--yes")
    done = threading.Event()

    def watch() -> None:
        sending.wait(600)
        done.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        result = during(done)
        if sending.wait(600):
            sys.exit((root.parent / "send.log").read_text(encoding="utf-8", errors="replace"))
    finally:
        if sending.poll() is None:
            sending.kill()
    return result


def measure(
    url: str,
    root: Path,
    env: dict[str, str],
    sink: Sink,
    args: argparse.Namespace,
    paths: list[str],
) -> None:
    """The five phases, each printing its figures (see the module docstring)."""
    alone, failed = hammer(url, args.clients, args.seconds, None, args.rate)
    print(f"archive GETs alone:             {alone:8.0f} /s ({args.clients} clients)")
    print(f"  failures: {len(failed)} {failed[:3]}")
    base = url.split("/archive/")[0]
    batch = args.posts
    print(f"one-click POSTs alone:          {one_clicks(base, paths[:batch]).summary()}")
    rate, failed, posts = under_load(url, args, paths[batch : 2 * batch], None)
    print(f"one-click POSTs during GETs:    {posts.summary()}")
    print(f"  archive GETs meanwhile:       {rate:8.0f} /s; failures {len(failed)} {failed[:3]}")
    timed_send(root, env, sink, ISSUES[1], lambda done: done.wait(600))
    print(f"send alone:                     {sink.rate()}")

    def loaded(done: threading.Event) -> tuple[float, list[str], Posts]:
        load = argparse.Namespace(clients=args.clients, seconds=args.max_seconds, rate=args.rate)
        return under_load(url, load, paths[2 * batch :], done)

    rate, failed, posts = timed_send(root, env, sink, ISSUES[2], loaded)
    print(f"send during archive GETs:       {sink.rate()}")
    print(f"archive GETs during the send:   {rate:8.0f} /s; failures {len(failed)} {failed[:3]}")
    print(f"one-click POSTs during both:    {posts.summary()}")


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="archive GETs per second in all (0: flat out)"
    )
    parser.add_argument("--posts", type=int, default=200, help="one-click POSTs per phase")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="longest loaded send")
    parser.add_argument("--sink-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sink-log", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink_port:
        run_sink(args.sink_port, args.sink_log)
        return
    tmp = tempfile.TemporaryDirectory()
    sink = Sink(Path(tmp.name) / "sink.log")
    web_port = free_port()
    env = {
        **os.environ,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
        "PYTHONPATH": str(REPO / "src"),
    }
    os.environ["NEWSLETTER_SECRET_KEY"] = SECRET
    with tmp:
        root, paths = make_workspace(Path(tmp.name), args.recipients, 3 * args.posts)
        first_issue = str(root / "issues" / ISSUES[0])
        first = run_cli(root, env, "send", first_issue, "--list", "early", "--yes")
        if first.wait(120):
            sys.exit((root.parent / "send.log").read_text(encoding="utf-8", errors="replace"))
        config = root / "newsletter.toml"
        config.write_text(
            config.read_text(encoding="utf-8") + '\n[archive]\nlists = ["early", "main"]\n',
            encoding="utf-8",
        )
        serve = run_cli(root, env, "serve", "--port", str(web_port))
        url = f"http://127.0.0.1:{web_port}/archive/{ISSUES[0]}/"
        try:
            for _ in range(200):  # up to 20 s for serve to start
                try:
                    if httpx.get(url, timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            measure(url, root, env, sink, args, paths)
        finally:
            serve.terminate()
            serve.wait(30)
            sink.stop()


if __name__ == "__main__":
    main()
