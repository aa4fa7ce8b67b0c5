"""Subscriber store figures: CSV import, then count and export of a big list.

Usage: python bench/bench_subscribers.py [--rows 100000] [--population 1000000] [--dir DIR]
       [--database-url postgresql+psycopg://USER@HOST/postgres]

Without ``--database-url`` every step uses a fresh SQLite file. With it, the steps use
fresh databases (bench_subscribers_small, _big, _population) created on that server
(the URL names any database the user can connect to, and may create databases in)
and dropped at the end.

Each measured step runs in its own child process, which reports its wall
time, its CPU time (the whole child, start-up included) and its own peak RSS
(``ru_maxrss``), so one step's memory never hides another's. Steps, all
through the same core functions the CLI calls:

1. import a generated N-row CSV into a fresh SQLite database (also at N/10,
   to show memory stays flat as the file grows: the import streams);
2. import the same file again (every row unchanged);
3. fill a second database with M subscribers (bulk inserts, setup only; on PostgreSQL
   then ANALYZE, as autovacuum would soon do);
4. ``Store.count()`` and ``count(list, status)`` over M;
5. ``audience.exporting.export_file`` of all M.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from population import CITIES, insert_members


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_csv(path: Path, rows: int) -> None:
    """Write a generic CSV of ``rows`` invented subscribers (some mixed case, some names empty)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "city", "plan", "signed_up"])
        for i in range(rows):
            email = f"Reader.{i:07d}@Example{i % 97}.com" if i % 5 == 0 else f"r{i:07d}@ex.org"
            name = "" if i % 11 == 0 else f"Reader {i}"
            writer.writerow([email, name, CITIES[i % len(CITIES)], ("free", "paid")[i % 2], "2024"])


def child_import(db: str, csv_path: str) -> dict[str, Any]:
    """Import ``csv_path`` into database URL ``db`` -> wall seconds, counts."""
    from newsletter.audience.importing import import_file
    from newsletter.store import open_store

    started = time.perf_counter()
    with open_store(db) as store:
        report = import_file(store, Path(csv_path), list_name=None, default_list="main")
    return {"wall_s": time.perf_counter() - started, "summary": report.summary()}


def child_populate(db: str, population: int) -> dict[str, Any]:
    """Fast setup: ``population`` active subscribers on list main, bulk-inserted."""
    from newsletter.store import open_store

    started = time.perf_counter()
    with open_store(db) as store:
        insert_members(store, population)
        if store.engine.dialect.name == "postgresql":
            # autovacuum gives a live database its planner statistics; a bulk load has none yet
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")
    return {"wall_s": time.perf_counter() - started}


def child_count(db: str) -> dict[str, Any]:
    """``count()`` and ``count(list_name='main', status='active')``, timed separately."""
    from newsletter.store import open_store

    with open_store(db) as store:
        started = time.perf_counter()
        total = store.count()
        middle = time.perf_counter()
        active = store.count(list_name="main", status="active")
        ended = time.perf_counter()
    return {
        "wall_s": ended - started,
        "count_all_s": middle - started,
        "count_list_active_s": ended - middle,
        "total": total,
        "active": active,
    }


def child_export(db: str, out: str) -> dict[str, Any]:
    """``export_file`` of everything -> rows written, file size."""
    from newsletter.audience.exporting import export_file
    from newsletter.store import open_store

    with open_store(db) as store:
        started = time.perf_counter()
        rows = export_file(store, Path(out))
        wall = time.perf_counter() - started
    return {"wall_s": wall, "rows": rows, "mb": Path(out).stat().st_size / 1e6}


CHILDREN: dict[str, Callable[..., dict[str, Any]]] = {
    "import": child_import,
    "populate": child_populate,
    "count": child_count,
    "export": child_export,
}


def run_child(step: str, *args: Any) -> dict[str, Any]:
    """Run one step in a fresh interpreter -> its figures, including its own peak RSS."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", step, *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    """Parse options, run every step, print one line of figures per step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--population", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to measure on (see above; default: SQLite files)",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        step, *args = options.child
        numbers = [int(a) if a.isdigit() else a for a in args]
        result = CHILDREN[step](*numbers)
        result["peak_rss_mb"] = _peak_rss_mb()
        # CPU seconds of the whole child: on a shared machine wall time also counts waiting
        result["cpu_s"] = time.process_time()
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(dir=options.dir) as tmp:
        work = Path(tmp)
        with databases(options.database_url, work) as url:
            run_steps(options, work, url)


@contextmanager
def databases(server: str | None, work: Path) -> Iterator[Callable[[str], str]]:
    """-> name: URL of a fresh database (a SQLite file in ``work``, or one on ``server``)."""
    if server is None:
        yield lambda name: f"sqlite:///{work / name}.db"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    names = [f"bench_subscribers_{name}" for name in ("small", "big", "population")]
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = make_url(server)
    try:
        yield lambda name: base.set(database=f"bench_subscribers_{name}").render_as_string(
            hide_password=False
        )
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def run_steps(options: argparse.Namespace, work: Path, url: Callable[[str], str]) -> None:
    """Every measured step, one child process each, one line of figures each."""
    small, big = work / "small.csv", work / "big.csv"
    make_csv(small, options.rows // 10)
    make_csv(big, options.rows)
    report("import", options.rows // 10, run_child("import", url("small"), small))
    report("import", options.rows, run_child("import", url("big"), big))
    report("re-import", options.rows, run_child("import", url("big"), big))
    population = url("population")
    report("populate", options.population, run_child("populate", population, options.population))
    report("count", options.population, run_child("count", population))
    report("export", options.population, run_child("export", population, work / "export.csv"))


def report(step: str, n: int, figures: dict[str, Any]) -> None:
    """Print one step's figures on one line."""
    extra = {k: v for k, v in figures.items() if k not in ("wall_s", "peak_rss_mb")}
    shown = ", ".join(
        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in extra.items()
    )
    print(
        f"{step:>9} {n:>9,} rows: {figures['wall_s']:7.2f} s wall, "
        f"peak RSS {figures['peak_rss_mb']:6.1f} MB  {shown}",
        flush=True,
    )


if __name__ == "__main__":
    main()
