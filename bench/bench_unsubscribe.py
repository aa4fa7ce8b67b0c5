"""Benchmark: one-click unsubscribe POSTs from many concurrent clients while a send runs.

    python bench/bench_unsubscribe.py [--recipients 20000] [--posts 2000] [--clients 64]
                                      [--workers 1]

Builds a throwaway workspace with RECIPIENTS active subscribers, starts ``newsletter
serve`` (uvicorn, its own process) on loopback, a recording SMTP sink (aiosmtpd, its own
process, noting the time of every RCPT TO) and a send of a sample issue to all of them
through the real ledger (``deliver.send_issue``, its own process) against the sink.
Once the send is under way it fires POSTS one-click unsubscribes
(``List-Unsubscribe=One-Click``) for distinct subscribers still waiting for their
message, from CLIENTS concurrent connections (httpx, bounded in count and time). It
prints requests/s, p50/p99 latency, errors and the serve process's CPU per request,
then checks, in the sink's log and in the deliveries table, that no unsubscribed
address was handed to the mail server after its POST was answered.
``--no-send`` measures the POSTs alone; ``--get`` first GETs every confirmation page
(figures of their own); ``--profile DIR`` samples serve with py-spy during each load and
prints where its CPU goes (``bench/serve_profile.py``). serve's log lines go to a file.
``--workers N`` runs ``serve --workers N`` (CPU then counts every worker; the profile
samples the parent only).

Everything listens on 127.0.0.1 only and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psutil
from http_load import Result, fire, report_load
from serve_profile import Sampler, print_breakdown

REPO = Path(__file__).resolve().parents[1]
SAMPLE_ISSUE = REPO / "tests" / "golden" / "sample_issue.json"
SECRET = "bench-not-secret"
PROGRESS_EVERY = 500


# --- the workspace ---------------------------------------------------------------------------


def make_workspace(folder: Path, recipients: int) -> tuple[Path, list[int], int]:
    """A workspace in ``folder`` with ``recipients`` active members of "main".

    Returns (workspace root, subscriber ids in send order, list id).
    """
    from newsletter.store import Consent, ImportRow, open_store_for
    from newsletter.workspace import load_workspace

    root = folder / "ws"
    root.mkdir()
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    ws = load_workspace(root, environ={"NEWSLETTER_SECRET_KEY": SECRET})
    rows = [
        ImportRow(email=f"reader{n:06d}@bench.example.org", name=f"Reader {n}")
        for n in range(recipients)
    ]
    with open_store_for(ws) as store:
        store.import_batch(rows, list_name="main", consent=Consent(source="import"))
        ids = [r.id for r in store.iter_recipients("main")]
        list_id = store.list_id("main")
    assert list_id is not None
    return root, ids, list_id


def make_issue(root: Path) -> Path:
    """The golden sample issue, rendered into ``root``/issues/."""
    from newsletter.compose.folder import write_issue_folder
    from newsletter.compose.issue_file import parse_issue
    from newsletter.render.pipeline import render_issue
    from newsletter.workspace import load_workspace

    ws = load_workspace(root, environ={"NEWSLETTER_SECRET_KEY": SECRET})
    issue = parse_issue(SAMPLE_ISSUE.read_text(encoding="utf-8"), SAMPLE_ISSUE)
    folder = ws.issues_dir / "bench-issue"
    write_issue_folder(folder, issue, render_issue(ws, issue))
    return folder


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without the developer's NEWSLETTER_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return {**env, "NEWSLETTER_SECRET_KEY": SECRET, **extra}


def start_serve(
    root: Path, env: dict[str, str], log_path: Path, workers: int = 1
) -> tuple[subprocess.Popen[str], str]:
    """``newsletter serve --port 0 --workers N`` in ``root``, its log lines (stderr) into
    ``log_path`` as a service manager would take them -> (process, its local URL)."""
    command = [sys.executable, "-m", "newsletter", "-w", str(root), "serve", "--port", "0"]
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [*command, "--workers", str(workers)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if " on http://" not in line:
        proc.kill()
        raise SystemExit(f"serve did not start: {line!r}")
    return proc, line.split(" on ", 1)[1].split(" ", 1)[0]


def stop(proc: subprocess.Popen[str]) -> None:
    """Interrupt ``proc`` like Ctrl-C and wait for it."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_sink(log_path: Path) -> tuple[subprocess.Popen[str], int]:
    """The recording SMTP sink in its own process -> (process, port)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--sink", str(log_path), "--sink-port", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit("the SMTP sink did not start")
    return proc, port


def stop_sink(proc: subprocess.Popen[str]) -> None:
    """Close the sink's stdin (its signal to write the log and exit) and wait."""
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=60)


def run_sink(log_path: Path, port: int) -> None:
    """Sink mode: accept every message, note ``time rcpt`` per RCPT TO; stop on stdin EOF."""
    from aiosmtpd.controller import Controller

    records: list[tuple[float, str]] = []

    class Recorder:
        async def handle_RCPT(
            self, server: object, session: object, envelope: object, address: str, options: object
        ) -> str:
            records.append((time.time(), address.lower()))
            envelope.rcpt_tos.append(address)  # type: ignore[attr-defined]
            if len(records) % PROGRESS_EVERY == 0:
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


def start_send(root: Path, issue: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """``deliver.send_issue`` of ``issue`` to every member of "main", in its own process."""
    return subprocess.Popen(
        [sys.executable, __file__, "--send-root", str(root), "--send-issue", str(issue)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_sink(proc: subprocess.Popen[str], count: int, timeout: float = 120.0) -> bool:
    """Wait until the sink reports ``count`` recipients (it prints every 500) -> reached?"""
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


def run_send(root: Path, issue: Path) -> None:
    """Send mode: the real ledger loop, to NEWSLETTER_SMTP_URL; prints its summary."""
    from newsletter.deliver import send_issue
    from newsletter.workspace import load_workspace

    ws = load_workspace(root)
    started = time.perf_counter()
    report = send_issue(ws, issue, list_name="main")
    seconds = time.perf_counter() - started
    print(f"{report.summary()} in {seconds:.1f} s", flush=True)


def check_nothing_after_answer(
    results: Sequence[Result], sink_log: Path, address_of: dict[int, str]
) -> int:
    """Count unsubscribed addresses the mail server was given after their POST's answer."""
    answered = {address_of[r.subscriber_id]: r.answered for r in results if r.status == 200}
    late = 0
    given = 0
    for line in sink_log.read_text(encoding="ascii").splitlines():
        stamp, address = line.split(" ", 1)
        given += 1
        if address in answered and float(stamp) > answered[address]:
            late += 1
            print(f"  LATE: {address} got RCPT at {stamp}, unsubscribed at {answered[address]:.6f}")
    print(f"  sink saw {given} recipients; sent after the unsubscribe was answered: {late}")
    return late


def check_ledger(results: Sequence[Result], database: Path) -> int:
    """From the deliveries table: unsubscribed subscribers whose message the sender
    started (row marked ``sending``) after their POST was answered."""
    from sqlalchemy import select

    from newsletter.store import open_store
    from newsletter.store.deliveries import deliveries

    answered = {r.subscriber_id: r.answered for r in results if r.status == 200}
    with open_store(f"sqlite:///{database}") as store, store.read() as conn:
        rows = conn.execute(
            select(
                deliveries.c.subscriber_id, deliveries.c.status, deliveries.c.first_attempt_at
            ).where(deliveries.c.subscriber_id.in_(list(answered)))
        ).all()
    by_status: dict[str, int] = {}
    late = 0
    for subscriber_id, status, first_attempt in rows:
        by_status[status] = by_status.get(status, 0) + 1
        if first_attempt is not None and first_attempt.timestamp() > answered[subscriber_id]:
            late += 1
    print(f"  ledger rows of the unsubscribed: {dict(sorted(by_status.items()))}")
    print(f"  of them started by the sender after the answer: {late}")
    return late


def measure(
    serve: subprocess.Popen[str],
    base: str,
    work: Sequence[tuple[int, str]],
    args: argparse.Namespace,
    method: str,
) -> list[Result]:
    """Fire ``method`` at every token of ``work``; print the figures (and the profile)."""
    server = psutil.Process(serve.pid)
    processes = [server, *server.children()]  # serve --workers N: the workers do the work
    profile = args.profile / f"serve-{method.lower()}.txt" if args.profile else None
    sampler = Sampler(serve.pid, profile) if profile else None
    before = [p.cpu_times() for p in processes]
    deadline = time.time() + args.max_seconds
    results = asyncio.run(fire(base, work, args.clients, deadline, method=method))
    after = [p.cpu_times() for p in processes]
    cpu = sum(a.user + a.system - b.user - b.system for a, b in zip(after, before, strict=True))
    label = "one-click POST" if method == "POST" else "confirmation page GET"
    cpu_ms = report_load(results, f"{label} x{args.clients} clients", cpu)
    if sampler is not None and profile is not None:
        sampler.stop()
        print_breakdown(profile, cpu_ms)
    return results


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--posts", type=int, default=2_000, help="unsubscribes to send")
    parser.add_argument("--clients", type=int, default=64, help="concurrent connections")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop firing after")
    parser.add_argument("--no-send", action="store_true", help="unsubscribes only, no send")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers N")
    parser.add_argument(
        "--get", action="store_true", help="first GET every confirmation page, then POST"
    )
    parser.add_argument(
        "--profile", type=Path, help="sample serve with py-spy into this folder; print where"
    )
    parser.add_argument("--sink", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sink-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--send-root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--send-issue", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        run_sink(args.sink, args.sink_port)
        return
    if args.send_root:
        run_send(args.send_root, args.send_issue)
        return

    from newsletter.mail.tokens import UnsubscribeTokens

    with tempfile.TemporaryDirectory(prefix="bench-unsubscribe-") as temp:
        folder = Path(temp)
        started = time.perf_counter()
        root, ids, list_id = make_workspace(folder, args.recipients)
        print(f"workspace with {len(ids)} subscribers in {time.perf_counter() - started:.1f} s")
        address_of = {sid: f"reader{n:06d}@bench.example.org" for n, sid in enumerate(ids)}
        sink_log = folder / "sink.log"
        sink, sink_port = start_sink(sink_log)
        env = child_env({"NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{sink_port}"})
        serve, base = start_serve(root, env, folder / "serve.log", args.workers)
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        send = None
        try:
            with_send = not args.no_send
            if with_send:
                send = start_send(root, make_issue(root), env)
                # fire once the send is under way (the sink has seen its first recipients)
                if not wait_for_sink(sink, PROGRESS_EVERY):
                    print("the send did not get under way; firing anyway")
            # distinct subscribers from the later part of the send order, so most are
            # still waiting for their message when they leave
            chosen = random.Random(5).sample(ids[len(ids) // 4 :], min(args.posts, len(ids)))
            tokens = UnsubscribeTokens((SECRET,))
            work = [(sid, tokens.make(sid, list_id, 1, email=address_of[sid])) for sid in chosen]
            if args.get:
                measure(serve, base, work, args, "GET")
            results = measure(serve, base, work, args, "POST")
            if send is not None:
                print("  (one-click POSTs answered while the send ran; waiting for it to end)")
                out, err = send.communicate(timeout=1800)
                print(f"send finished (exit {send.returncode}): {out.strip()}")
                if send.returncode:
                    print(err.strip()[-2000:])
        finally:
            if send is not None and send.poll() is None:
                send.kill()
            stop(serve)
            stop_sink(sink)
            if args.profile:
                shutil.copy(folder / "serve.log", args.profile / "serve.log")
        if with_send:
            late = check_nothing_after_answer(results, sink_log, address_of)
            started_late = check_ledger(results, root / "subscribers" / "newsletter.db")
            verdict = "PASS" if late == 0 and started_late == 0 else "FAIL"
            print(verdict, "- nothing sent after an answered unsubscribe")
        from newsletter.store import open_store

        with open_store(f"sqlite:///{root / 'subscribers' / 'newsletter.db'}") as store:
            answered = [r.subscriber_id for r in results if r.status == 200]
            left = len(answered)
            still = store.sendable_ids(answered, "main")
            print(f"  unsubscribed per the database: {left - len(still)} of {left} answered 200")


if __name__ == "__main__":
    main()
