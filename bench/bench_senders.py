"""Benchmark: 1, 2 and 3 ``newsletter send`` processes on one campaign, and the database
work per delivered message on PostgreSQL and on SQLite.

    python bench/bench_senders.py [--recipients 20000] [--senders 1,2,3] [--connections 4]
        [--reply-ms 20] [--database-url postgresql+psycopg://USER@HOST/postgres]
        [--no-sqlite] [--quick]

Builds a throwaway workspace with RECIPIENTS active members of list "main" and the golden
sample issue, and starts a throwaway PostgreSQL cluster (initdb + pg_ctl, Unix socket
only, the server's default durable settings: fsync and synchronous_commit on) unless
``--database-url`` names a server; there it creates the database ``bench_senders`` and
drops it at the end. Each sender gets its own loopback SMTP relay (aiosmtpd, a process
each) that answers every message REPLY_MS after its data, like a relay across a network.

For each K in ``--senders`` it renders the issue into a new folder (a new campaign) and
starts K real CLI senders together (``python -m newsletter -v send ISSUE --yes
--connections C``), sender i through relay i. Per K it prints the wall time from the
first sender's start to the last message recorded sent (both from the database),
messages per second and per hour, each sender's share and the speed-up over K=1, and
checks that every recipient got exactly one copy (in the ledger and at the relays).
Then one sender on SQLite (same recipients, same relay). The table of database work per
delivered message comes from the senders' own "database work" log lines (ledger write
transactions and the time spent in them), their CPU (rusage of the reaped children) and,
on PostgreSQL, the server: CPU of the postmaster and all its processes (psutil, when the
server runs on this machine), pg_stat_database and pg_stat_wal deltas over the run.
Last, a projection for 4 and 16 senders from the one-sender figures.

Everything listens on loopback only and stops by itself; the exit status is 1 unless
every sender succeeded and every recipient got exactly one copy per campaign.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from population import insert_members
from senders_pg import Server, bench_database, postgres_cluster
from senders_relay import Relay

REPO = Path(__file__).resolve().parents[1]
SAMPLE_ISSUE = REPO / "tests" / "golden" / "sample_issue.json"
SECRET = "bench-not-secret"
WORK_LINE = re.compile(r"database work: (\d+) transactions, ([\d.]+) ms per message")


# --- the workspace ---------------------------------------------------------------------------


def make_workspace(root: Path, recipients: int, urls: list[str]) -> None:
    """A workspace in ``root`` (sample config) whose databases ``urls`` each hold
    ``recipients`` active members of list "main" (bulk-inserted: setup, not measured)."""
    from newsletter.store import open_store

    (root / "subscribers").mkdir(parents=True)
    (root / "issues").mkdir()
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    for url in urls:
        with open_store(url) as store:
            insert_members(store, recipients)
            if store.engine.dialect.name == "postgresql":
                # a live database has the planner statistics autovacuum gathers
                with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                    c.exec_driver_sql("ANALYZE")


def make_issue(root: Path, name: str) -> Path:
    """The golden sample issue, rendered into ``root``/issues/``name`` (a new campaign)."""
    from newsletter.compose.folder import write_issue_folder
    from newsletter.compose.issue_file import parse_issue
    from newsletter.render.pipeline import render_issue
    from newsletter.workspace import load_workspace

    ws = load_workspace(root, environ={"NEWSLETTER_SECRET_KEY": SECRET})
    issue = parse_issue(SAMPLE_ISSUE.read_text(encoding="utf-8"), SAMPLE_ISSUE)
    folder = ws.issues_dir / name
    write_issue_folder(folder, issue, render_issue(ws, issue))
    return folder


# --- one measured run ------------------------------------------------------------------------


@dataclass
class Bench:
    """What every run shares: the workspace, the relays (one per sender) and the options."""

    root: Path
    relays: list[Relay]
    recipients: int
    connections: int
    reply_ms: float


@dataclass
class Round:
    """One run of ``senders`` processes on one campaign, and what it cost."""

    backend: str
    senders: int
    wall: float = 0.0  # first sender's start to the last message recorded sent
    shares: list[int] = field(default_factory=list)  # messages sent by each sender
    steps: int = 0  # ledger write transactions, all senders
    ledger_ms: float = 0.0  # milliseconds all senders spent in them
    client_cpu: float = 0.0  # CPU seconds of the sender processes
    relay_cpu: float = 0.0  # CPU seconds of the relays
    server: dict[str, float] = field(default_factory=dict)  # PostgreSQL deltas
    work: list[tuple[int, float]] = field(default_factory=list)  # each sender's log line
    ok: bool = False  # every sender exited 0, every recipient got exactly one copy

    @property
    def sent(self) -> int:
        """Messages sent in the run."""
        return sum(self.shares)

    @property
    def rate(self) -> float:
        """Messages per second over the wall time."""
        return self.sent / self.wall if self.wall > 0 else 0.0


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def child_env(database_url: str, smtp_url: str) -> dict[str, str]:
    """This environment without the developer's NEWSLETTER_* settings, running this
    checkout's code, with the bench's database, relay and signing key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    path = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    return {
        **env,
        "PYTHONPATH": path,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_SMTP_URL": smtp_url,
    }


def output_of(bench: Bench, issue: Path, i: int) -> tuple[Path, Path]:
    """The files that take sender ``i``'s stdout and stderr (its log) for ``issue``."""
    folder = bench.root / "logs"
    folder.mkdir(exist_ok=True)
    return folder / f"{issue.name}.{i}.out", folder / f"{issue.name}.{i}.err"


def start_senders(bench: Bench, issue: Path, url: str, count: int) -> list[subprocess.Popen[str]]:
    """``count`` CLI senders of ``issue`` started together, sender i through relay i."""
    procs = []
    for i in range(count):
        command = [sys.executable, "-m", "newsletter", "-v", "-w", str(bench.root), "send"]
        command += [str(issue), "--yes", "--connections", str(bench.connections)]
        stdout, stderr = output_of(bench, issue, i)
        with open(stdout, "w") as out, open(stderr, "w") as err:
            env = child_env(url, bench.relays[i].url)
            procs.append(subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True))
    return procs


def wait_senders(procs: list[subprocess.Popen[str]], timeout: float) -> list[int]:
    """Wait for every sender (killing all after ``timeout`` s) -> their exit codes."""
    end = time.monotonic() + timeout
    try:
        return [proc.wait(timeout=max(end - time.monotonic(), 0.1)) for proc in procs]
    except subprocess.TimeoutExpired:
        print(f"  senders still running after {timeout:.0f} s: killed")
        for proc in procs:
            proc.kill()
        return [proc.wait() for proc in procs]


def meters(bench: Bench, server: Server | None) -> dict[str, float]:
    """Counters to subtract: the reaped children's CPU (the senders: the relays are
    never reaped before the end), the relays' CPU, the server's counters."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    found = {"client": usage.ru_utime + usage.ru_stime}
    found["relays"] = sum(relay.cpu() for relay in bench.relays)
    if server is not None:
        found.update(server.snapshot())
    return found


def run_round(bench: Bench, backend: str, url: str, count: int, server: Server | None) -> Round:
    """Send a new campaign with ``count`` senders on ``url``; print and return its figures."""
    name = f"{backend}-{count}-senders"
    issue = make_issue(bench.root, name)
    print(f"\n{backend}, {count} sender(s) x {bench.connections} connections; load {load()}")
    before = meters(bench, server)
    procs = start_senders(bench, issue, url, count)
    timeout = 300 + bench.recipients * (bench.reply_ms + 5) / 1000
    codes = wait_senders(procs, timeout)
    after = meters(bench, server)
    print(f"  load after {load()}")
    delta = {key: after[key] - before[key] for key in after}
    run = Round(backend, count, client_cpu=delta.pop("client"), relay_cpu=delta.pop("relays"))
    run.server = delta
    logs = [output_of(bench, issue, i)[1].read_text() for i in range(count)]
    for proc, code, log in zip(procs, codes, logs, strict=True):
        if code:
            print(f"  sender pid {proc.pid} exited {code}:\n{log[-1500:]}")
    once = read_ledger(run, url, f"issues/{name}", [proc.pid for proc in procs], bench)
    read_work_lines(run, logs)
    run.ok = once and not any(codes)
    return run


def read_ledger(run: Round, url: str, key: str, pids: list[int], bench: Bench) -> bool:
    """Wall time and shares of campaign ``key`` from the database; check that each
    recipient got exactly one copy, in the ledger and at the relays -> whether so."""
    from sqlalchemy import func, select

    from newsletter.store import open_store
    from newsletter.store.campaigns import campaigns
    from newsletter.store.deliveries import deliveries
    from newsletter.store.senders import campaign_senders

    with open_store(url) as store, store.read() as conn:
        cid = conn.scalar(select(campaigns.c.id).where(campaigns.c.issue_path == key))
        start = conn.scalar(
            select(func.min(campaign_senders.c.started_at)).where(
                campaign_senders.c.campaign_id == cid
            )
        )
        mine = deliveries.c.campaign_id == cid
        end = conn.scalar(select(func.max(deliveries.c.sent_at)).where(mine))
        by_holder = conn.execute(
            select(campaign_senders.c.holder, func.count(deliveries.c.id))
            .join(deliveries, deliveries.c.sender_id == campaign_senders.c.id)
            .where(mine, deliveries.c.status == "sent")
            .group_by(campaign_senders.c.holder)
        ).all()
        statuses = dict(
            conn.execute(
                select(deliveries.c.status, func.count()).where(mine).group_by(deliveries.c.status)
            ).all()
        )
        readers = conn.scalar(
            select(func.count(func.distinct(deliveries.c.subscriber_id))).where(mine)
        )
    sent_by = {int(holder.split(":")[-2]): int(n) for holder, n in by_holder}  # host:pid:thread
    run.shares = [sent_by.get(pid, 0) for pid in pids]
    run.wall = (end - start).total_seconds() if start and end else 0.0
    copies: Counter[str] = Counter()
    for relay in bench.relays:
        copies.update(relay.take_counts())
    n = bench.recipients
    once = (
        statuses == {"sent": n}
        and readers == n
        and len(copies) == n
        and max(copies.values(), default=0) == 1
    )
    print(
        f"  each recipient exactly once: {'yes' if once else 'NO'} (ledger: {statuses}, "
        f"{readers} subscribers; relays: {len(copies)} addresses, {copies.total()} copies)"
    )
    return once


def read_work_lines(run: Round, logs: list[str]) -> None:
    """Each sender's "database work" log line (transactions, ms per message), and the
    sums over the senders."""
    for i, (log, sent) in enumerate(zip(logs, run.shares, strict=True)):
        found = WORK_LINE.search(log)
        if found is None and sent:
            print(f"  sender {i + 1} logged no database work line")
        steps, ms = (int(found[1]), float(found[2])) if found else (0, 0.0)
        run.work.append((steps, ms))
        run.steps += steps
        run.ledger_ms += ms * sent


# --- printing --------------------------------------------------------------------------------


def print_round(run: Round, base: Round | None) -> None:
    """Wall time, rates, shares and speed-up of one run."""
    speed = f", speed-up x{run.rate / base.rate:.2f} over 1 sender" if base and base.rate else ""
    print(
        f"  {run.sent} messages in {run.wall:.2f} s (first sender's start to the last "
        f"message sent): {run.rate:,.1f} msg/s, {run.rate * 3600:,.0f} msg/hour{speed}"
    )
    for i, (sent, (steps, ms)) in enumerate(zip(run.shares, run.work, strict=True)):
        print(
            f"  sender {i + 1}: {sent} messages ({100 * sent / max(run.sent, 1):.0f}%), "
            f"{steps / max(sent, 1):.3f} ledger transactions and {ms:.2f} ms in them per message"
        )


def print_work(runs: list[Round]) -> None:
    """The table of database work (and CPU) per delivered message."""
    print(
        "\ndatabase work per delivered message (all senders of a run together; server "
        "columns cover the whole run:\nstart-up, enqueue, claims, outcomes, autovacuum; "
        "'-': SQLite works inside the sender)"
    )
    head = ("backend", "senders", "ledger tx", "ledger ms", "sender CPU ms", "relay CPU ms")
    tail = ("server CPU ms", "commits", "rows written", "WAL KB", "WAL syncs")
    print("  " + " ".join(f"{h:>13}" for h in head + tail))
    for run in runs:
        n = max(run.sent, 1)
        cells = [run.backend, str(run.senders), f"{run.steps / n:.3f}", f"{run.ledger_ms / n:.3f}"]
        cells += [f"{1000 * run.client_cpu / n:.3f}", f"{1000 * run.relay_cpu / n:.3f}"]
        server = run.server
        cells += [
            f"{1000 * server['cpu'] / n:.3f}" if "cpu" in server else "-",
            f"{server['commits'] / n:.3f}" if server else "-",
            f"{server['rows'] / n:.2f}" if server else "-",
            f"{server['wal_bytes'] / 1024 / n:.2f}" if server else "-",
            f"{server['wal_syncs'] / n:.3f}" if server else "-",
        ]
        print("  " + " ".join(f"{c:>13}" for c in cells))
    print(
        "  ledger tx / ms: the senders' ledger write transactions and the time they spent in\n"
        "  them (their log line); sender / relay / server CPU: CPU time of those processes\n"
        "  (the senders' includes their start-up); commits: pg_stat_database xact_commit\n"
        "  (read-only ones too); rows written: tuples inserted + updated + deleted; WAL KB and\n"
        "  WAL syncs: pg_current_wal_lsn and pg_stat_wal.wal_sync, the whole cluster"
    )


def print_projection(one: Round, bench: Bench) -> None:
    """Messages per hour for 4 and 16 senders from the one-sender PostgreSQL run."""
    n = max(one.sent, 1)
    bound = "the relay answers at once"
    if bench.reply_ms:
        bound = f"its relay bound: {bench.connections} connections / {bench.reply_ms:g} ms = "
        bound += f"{bench.connections * 1000 / bench.reply_ms:,.0f} msg/s"
    print(
        f"\nprojection from the one-sender PostgreSQL run ({one.rate:,.1f} msg/s; {bound}),\n"
        "assuming each sender runs on its own machine next to its own relay and sends as "
        "fast as the one here,\nthe providers take all of it, and the database does the "
        "same work per message on a CPU like this one:"
    )
    server = one.server
    for count in (4, 16):
        rate = count * one.rate
        line = f"  {count:>2} senders: {rate:,.0f} msg/s, {rate * 3600:,.0f} msg/hour; database:"
        if "cpu" in server:
            line += f" {rate * server['cpu'] / n:.2f} cores,"
        line += (
            f" {rate * server['commits'] / n:,.0f} commits/s,"
            f" {rate * server['wal_syncs'] / n:,.0f} WAL syncs/s,"
            f" {rate * server['wal_bytes'] / n / 1e6:.1f} MB/s of WAL"
        )
        print(line)
    print(
        f"  each sender process used {one.rate * one.client_cpu / n:.2f} cores at that rate, "
        f"its relay here {one.rate * one.relay_cpu / n:.2f}"
    )


def describe_disk(path: Path) -> str:
    """The file system type and mount point holding ``path``."""
    best = max(
        (p for p in psutil.disk_partitions(all=True) if str(path).startswith(p.mountpoint)),
        key=lambda p: len(p.mountpoint),
        default=None,
    )
    return f"{best.fstype} ({best.mountpoint})" if best else "unknown"


# --- main ------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, help="active members (default 20000)")
    parser.add_argument("--senders", default="1,2,3", help="sender counts to run, e.g. 1,2,3")
    parser.add_argument("--connections", type=int, default=4, help="SMTP connections per sender")
    parser.add_argument("--reply-ms", type=float, default=20.0, help="relay's answer time")
    parser.add_argument("--database-url", help="a PostgreSQL server (default: a throwaway one)")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite run")
    parser.add_argument("--quick", action="store_true", help="300 recipients: a smoke run")
    parser.add_argument(
        "--pg-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the throwaway cluster, e.g. synchronous_commit=off (repeatable)",
    )
    args = parser.parse_args()
    if args.recipients is None:
        args.recipients = 300 if args.quick else 20_000
    return args


def main() -> None:
    """Run the benchmark and print its figures; exit 1 unless every run was right."""
    args = parse_args()
    counts = [int(k) for k in args.senders.split(",")]
    print(f"nproc {os.cpu_count()}, load {load()}; {args.recipients} recipients")
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-senders-")))
        if args.database_url:
            admin, postmaster = args.database_url, None
        else:
            admin, postmaster = stack.enter_context(postgres_cluster(args.pg_setting))
        pg_url = stack.enter_context(bench_database(admin))
        server = Server(pg_url, postmaster)
        stack.callback(server.engine.dispose)
        root = folder / "ws"
        sqlite_url = f"sqlite:///{root / 'subscribers' / 'newsletter.db'}"
        started = time.perf_counter()
        make_workspace(root, args.recipients, [pg_url] + ([] if args.no_sqlite else [sqlite_url]))
        print(f"workspace ready in {time.perf_counter() - started:.1f} s")
        relays = [Relay(args.reply_ms) for _ in range(max(counts))]
        for relay in relays:
            stack.callback(relay.stop)
        bench = Bench(root, relays, args.recipients, args.connections, args.reply_ms)
        print(f"PostgreSQL: {server.settings}" + ("" if postmaster else "; the given server"))
        if not args.no_sqlite:
            print("SQLite: WAL, synchronous=NORMAL (the sender's own setting)")
        print(f"work folder (the throwaway cluster's too) on {describe_disk(folder)}")
        print(f"relays: an aiosmtpd process per sender, answering {args.reply_ms:g} ms after data")
        runs = [run_round(bench, "postgresql", pg_url, k, server) for k in counts]
        base = runs[0] if counts[0] == 1 else None
        if not args.no_sqlite:
            runs.append(run_round(bench, "sqlite", sqlite_url, 1, None))
        print("\nsenders on one campaign:")
        for run in runs:
            print(f"{run.backend}, {run.senders} sender(s):")
            print_round(run, base if run.backend == "postgresql" else None)
        print_work(runs)
        if base is not None:
            print_projection(base, bench)
    print(f"\nload at the end {load()}")
    if not all(run.ok for run in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
