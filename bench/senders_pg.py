"""The PostgreSQL side of bench_senders.py: a throwaway cluster, a fresh database, and
what the server did during a run (its counters and the CPU of its processes)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

DATABASE = "bench_senders"


def _pg_bin() -> Path:
    """The folder of initdb and pg_ctl (on PATH, else Debian's newest)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not candidates:
        raise SystemExit("PostgreSQL server binaries (initdb) not found; give --database-url")
    return candidates[-1].parent


def _as_server_user(args: list[str], check: bool = True) -> None:
    """Run a PostgreSQL tool (as the postgres user when root: the server refuses root),
    its output dropped: no pipes, the server started by pg_ctl would hold them open."""
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    subprocess.run(args, check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextmanager
def postgres_cluster(settings: list[str]) -> Iterator[tuple[str, int]]:
    """A throwaway cluster on a Unix socket with the default (durable) settings but
    ``settings`` (``name=value``) -> (URL of its database postgres, the postmaster's pid)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-senders-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, user="postgres")
    bin_dir, data, port = _pg_bin(), folder / "data", 5432  # the socket is ours alone
    _as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"])
    options = f"-c listen_addresses='' -c unix_socket_directories={folder} -p {port}"
    options += "".join(f" -c {setting}" for setting in settings)
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data)]
    _as_server_user([*pg_ctl, "-l", str(folder / "server.log"), "-o", options, "-w", "start"])
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
        yield f"postgresql+psycopg://postgres@/postgres?host={folder}&port={port}", pid
    finally:
        _as_server_user([*pg_ctl, "-m", "fast", "-w", "stop"], check=False)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def bench_database(admin_url: str) -> Iterator[str]:
    """A fresh database ``bench_senders`` on the server of ``admin_url`` -> its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}"'))
        conn.execute(text(f'CREATE DATABASE "{DATABASE}"'))
    try:
        yield make_url(admin_url).set(database=DATABASE).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
        admin.dispose()


class Server:
    """What the PostgreSQL server did: counters of the bench database and WAL, and the CPU
    of the postmaster and its processes when it runs here (``postmaster``: its pid)."""

    def __init__(self, url: str, postmaster: int | None) -> None:
        from sqlalchemy import create_engine, text

        self.engine = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=1)
        with self.engine.connect() as conn:
            if postmaster is None:  # --database-url: the server is here when our backend is
                backend = conn.scalar(text("SELECT pg_backend_pid()"))
                postmaster = _local_parent(int(backend), url)
            shown = "fsync synchronous_commit wal_sync_method full_page_writes shared_buffers"
            self.settings = ", ".join(
                f"{name}={conn.scalar(text(f'SHOW {name}'))}" for name in shown.split()
            )
            self.settings += f" (PostgreSQL {conn.scalar(text('SHOW server_version'))})"
        self.postmaster = psutil.Process(postmaster) if postmaster else None

    def snapshot(self) -> dict[str, float]:
        """Counters now: commits, rows written, WAL bytes and syncs, server CPU seconds."""
        from sqlalchemy import text

        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            db = conn.execute(
                text(
                    "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted "
                    "FROM pg_stat_database WHERE datname = current_database()"
                )
            ).one()
            wal = conn.execute(
                text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, wal_sync FROM pg_stat_wal")
            ).one()
        found = {"commits": db[0], "rows": db[1], "wal_bytes": float(wal[0]), "wal_syncs": wal[1]}
        if self.postmaster is not None:
            found["cpu"] = _tree_cpu(self.postmaster)
        return {k: float(v) for k, v in found.items()}


def _local_parent(backend: int, url: str) -> int | None:
    """The postmaster of ``backend`` when the server of ``url`` runs on this machine."""
    if not ("host=/" in url or "@/" in url or "localhost" in url or "127.0.0.1" in url):
        return None
    try:
        parent = psutil.Process(backend).parent()
    except psutil.Error:
        return None
    return (
        parent.pid if parent is not None and parent.name() in ("postgres", "postmaster") else None
    )


def _tree_cpu(postmaster: psutil.Process) -> float:
    """CPU seconds of the postmaster, its live processes and the ones it has reaped."""
    own = postmaster.cpu_times()
    total = own.user + own.system + own.children_user + own.children_system
    for child in postmaster.children():
        try:
            times = child.cpu_times()
        except psutil.Error:  # ended just now: counted in the reaped ones next time
            continue
        total += times.user + times.system
    return float(total)
