"""Benchmark: one-click unsubscribe POSTs from many concurrent clients while a send runs.

    python bench/bench_unsubscribe.py [--recipients 20000] [--posts 2000] [--clients 64]
        [--no-send] [--get] [--profile DIR] [--database-url postgresql+psycopg://USER@HOST/db]
        [--workers 1]

Builds a throwaway workspace with RECIPIENTS active subscribers, starts ``newsletter
serve`` (uvicorn, its own process) on loopback, a recording SMTP sink (aiosmtpd, its own
process, noting the time of every RCPT TO: ``bench/smtp_recorder.py``) and a send of a
sample issue to all of them through the real ledger (``deliver.send_issue``, its own
process) against the sink. Once the send is under way it fires POSTS one-click
unsubscribes (``List-Unsubscribe=One-Click``) for distinct subscribers still waiting for
their message, from CLIENTS concurrent keep-alive connections (``bench/http_load.py``, a
deliberately cheap client: it shares the machine). It prints requests/s, p50/p99
latency, errors and the CPU per request of serve and of the load client, then checks, in
the sink's log and in the deliveries table, that no unsubscribed address was handed to
the mail server after its POST was answered (the line ``PASS - ...`` or ``FAIL - ...``).
``--no-send`` measures the POSTs alone; ``--get`` first GETs every confirmation page
(figures of their own); ``--profile DIR`` samples serve with py-spy during each load and
prints where its CPU goes (``bench/serve_profile.py``). serve's log lines go to a file.
``--database-url`` names a PostgreSQL server (any database the user may connect to and
create databases from): the run uses a fresh database ``bench_unsubscribe`` there,
dropped at the end, instead of a SQLite file. ``--workers N`` runs ``serve --workers N``
(CPU then counts the parent and every worker; the profile samples the parent only).

Everything listens on 127.0.0.1 only and stops by itself. The machine's load averages
are printed before and after: the figures mean little on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import psutil
from http_load import Result, fire, percentile, report_load
from serve_profile import Sampler, print_breakdown
from smtp_recorder import start_sink, stop_sink, wait_for_sink

__all__ = ["SECRET", "child_env", "make_workspace", "percentile", "start_serve", "stop"]

REPO = Path(__file__).resolve().parents[1]
SAMPLE_ISSUE = REPO / "tests" / "golden" / "sample_issue.json"
SECRET = "bench-not-secret"
# the POSTs start once the sink has seen this many recipients (or an eighth of them)
SEND_UNDER_WAY = 500
BENCH_DATABASE = "bench_unsubscribe"


# --- the workspace ---------------------------------------------------------------------------


def make_workspace(
    folder: Path, recipients: int, database_url: str | None = None
) -> tuple[Path, list[int], int]:
    """A workspace in ``folder`` with ``recipients`` active members of "main", its
    database at ``database_url`` (default: the workspace's SQLite file).

    Returns (workspace root, subscriber ids in send order, list id).
    """
    from newsletter.store import Consent, ImportRow, open_store_for
    from newsletter.workspace import load_workspace

    root = folder / "ws"
    root.mkdir()
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    environ = {"NEWSLETTER_SECRET_KEY": SECRET}
    if database_url:
        environ["NEWSLETTER_DATABASE_URL"] = database_url
    ws = load_workspace(root, environ=environ)
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


@contextmanager
def bench_database(server: str | None, folder: Path) -> Iterator[str]:
    """-> the URL of a fresh database: a SQLite file in ``folder``, or BENCH_DATABASE
    created on the PostgreSQL ``server`` (and dropped when the block ends)."""
    if server is None:
        yield f"sqlite:///{folder / 'ws' / 'subscribers' / 'newsletter.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    drop = text(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
    with admin.connect() as conn:
        conn.execute(drop)
        conn.execute(text(f'CREATE DATABASE "{BENCH_DATABASE}"'))
    try:
        yield make_url(server).set(database=BENCH_DATABASE).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(drop)
        admin.dispose()


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


class Cpu(NamedTuple):
    """Seconds of CPU in user and system mode."""

    user: float
    system: float


def _cpu(server: psutil.Process) -> Cpu:
    """serve's CPU times, its workers' (serve --workers N) included."""
    processes = [server, *server.children()]
    times = [process.cpu_times() for process in processes]
    return Cpu(sum(t.user for t in times), sum(t.system for t in times))


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


def start_send(root: Path, issue: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """``deliver.send_issue`` of ``issue`` to every member of "main", in its own process."""
    return subprocess.Popen(
        [sys.executable, __file__, "--send-root", str(root), "--send-issue", str(issue)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


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


def check_ledger(results: Sequence[Result], database_url: str) -> int:
    """From the deliveries table: unsubscribed subscribers whose message the sender
    started (row marked ``sending``) after their POST was answered."""
    from sqlalchemy import select

    from newsletter.store import open_store
    from newsletter.store.deliveries import deliveries

    answered = {r.subscriber_id: r.answered for r in results if r.status == 200}
    with open_store(database_url) as store, store.read() as conn:
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


def thread_cpu(process: psutil.Process) -> dict[int, float]:
    """Thread id -> CPU seconds so far, of every thread of ``process`` (the main thread's
    id is the process id: in serve it runs the event loop)."""
    return {thread.id: thread.user_time + thread.system_time for thread in process.threads()}


def measure(
    serve: subprocess.Popen[str],
    base: str,
    work: Sequence[tuple[int, str]],
    args: argparse.Namespace,
    method: str,
) -> list[Result]:
    """Fire ``method`` at every token of ``work``; print the figures (and the profile)."""
    server = psutil.Process(serve.pid)
    profile = args.profile / f"serve-{method.lower()}.txt" if args.profile else None
    sampler = Sampler(serve.pid, profile) if profile else None
    start: dict[str, Any] = {}

    def measuring() -> None:
        start.update(cpu=_cpu(server), threads=thread_cpu(server), client=time.process_time())

    deadline = time.time() + args.max_seconds
    warmup = min(args.clients, len(work) // 4)
    results = asyncio.run(
        fire(base, work, args.clients, deadline, method=method, warmup=warmup, measuring=measuring)
    )
    client_cpu = time.process_time() - start["client"]
    after, threads_after = _cpu(server), thread_cpu(server)
    before, threads_before = start["cpu"], start["threads"]
    cpu = after.user + after.system - before.user - before.system
    label = "one-click POST" if method == "POST" else "confirmation page GET"
    print(f"{label}: {warmup} warm-up requests first, not in the figures")
    cpu_ms = report_load(results, f"{label} x{args.clients} clients", cpu, client_cpu)
    measured = len(results) - warmup
    loop = threads_after.get(serve.pid, 0.0) - threads_before.get(serve.pid, 0.0)
    print(
        f"    of which the event loop thread {loop * 1000 / measured:.2f} ms, "
        f"other threads (database) {(cpu - loop) * 1000 / measured:.2f} ms"
    )
    if sampler is not None and profile is not None:
        sampler.stop()
        print_breakdown(profile, cpu_ms)
    return results


def parse_args() -> argparse.Namespace:
    """The command line."""
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
    parser.add_argument(
        "--database-url", help="a PostgreSQL server to measure on (default: a SQLite file)"
    )
    parser.add_argument("--send-root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--send-issue", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages, as ``uptime`` shows them."""
    return ", ".join(f"{load:.2f}" for load in os.getloadavg())


def main() -> int:
    """Run the benchmark and print its figures -> exit status (1: the safety check failed)."""
    args = parse_args()
    if args.send_root:
        run_send(args.send_root, args.send_issue)
        return 0
    print(f"load average: {load_average()} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="bench-unsubscribe-") as temp:
        folder = Path(temp)
        with bench_database(args.database_url, folder) as database_url:
            started = time.perf_counter()
            root, ids, list_id = make_workspace(
                folder, args.recipients, database_url if args.database_url else None
            )
            elapsed = time.perf_counter() - started
            print(f"workspace with {len(ids)} subscribers in {elapsed:.1f} s")
            extra = {"NEWSLETTER_DATABASE_URL": database_url} if args.database_url else {}
            ok = run(args, folder, root, ids, list_id, database_url, extra)
    print(f"load average: {load_average()}")
    return 0 if ok else 1


def run(
    args: argparse.Namespace,
    folder: Path,
    root: Path,
    ids: list[int],
    list_id: int,
    database_url: str,
    extra_env: dict[str, str],
) -> bool:
    """Start the sink, serve (and the send), fire, check -> whether every check passed."""
    from newsletter.mail.tokens import UnsubscribeTokens

    address_of = {sid: f"reader{n:06d}@bench.example.org" for n, sid in enumerate(ids)}
    sink_log = folder / "sink.log"
    sink_port = free_port()
    under_way = min(SEND_UNDER_WAY, max(1, len(ids) // 8))
    sink = start_sink(sink_log, sink_port, every=under_way)
    env = child_env({"NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{sink_port}", **extra_env})
    serve, base = start_serve(root, env, folder / "serve.log", args.workers)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    send = None
    sent_ok = True
    try:
        if not args.no_send:
            send = start_send(root, make_issue(root), env)
            # fire once the send is under way (the sink has seen its first recipients)
            if not wait_for_sink(sink, under_way):
                print("the send did not get under way; firing anyway")
        # distinct subscribers from the later part of the send order, so most are
        # still waiting for their message when they leave
        pool = ids[len(ids) // 4 :]
        chosen = random.Random(5).sample(pool, min(args.posts, len(pool)))
        tokens = UnsubscribeTokens((SECRET,))
        work = [(sid, tokens.make(sid, list_id, 1, email=address_of[sid])) for sid in chosen]
        if args.get:
            measure(serve, base, work, args, "GET")
        results = measure(serve, base, work, args, "POST")
        if send is not None:
            print("  (one-click POSTs answered while the send ran; waiting for it to end)")
            out, err = send.communicate(timeout=1800)
            print(f"send finished (exit {send.returncode}): {out.strip()}")
            sent_ok = send.returncode == 0
            if not sent_ok:
                print(err.strip()[-2000:])
    finally:
        if send is not None and send.poll() is None:
            send.kill()
        stop(serve)
        stop_sink(sink)
        if args.profile:
            shutil.copy(folder / "serve.log", args.profile / "serve.log")
    return (
        check(results, sink_log, address_of, database_url, with_send=send is not None) and sent_ok
    )


def check(
    results: Sequence[Result],
    sink_log: Path,
    address_of: dict[int, str],
    database_url: str,
    *,
    with_send: bool,
) -> bool:
    """Print the safety check (after a send) and what the database says -> passed?"""
    from newsletter.store import open_store

    passed = True
    if with_send:
        late = check_nothing_after_answer(results, sink_log, address_of)
        started_late = check_ledger(results, database_url)
        passed = late == 0 and started_late == 0
        print("PASS" if passed else "FAIL", "- nothing sent after an answered unsubscribe")
    answered = [r.subscriber_id for r in results if r.status == 200]
    with open_store(database_url) as store:
        still = store.sendable_ids(answered, "main")
    left = len(answered) - len(still)
    print(f"  unsubscribed per the database: {left} of {len(answered)} answered 200")
    return passed and not still


if __name__ == "__main__":
    sys.exit(main())
