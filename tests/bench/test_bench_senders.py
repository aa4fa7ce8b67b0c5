"""Smoke test of bench/bench_senders.py: a tiny run (1 and 2 CLI senders on a throwaway
PostgreSQL the bench starts itself, then one on SQLite) finishes, prints its figures and
finds that every recipient got exactly one copy per campaign. No speed is asserted.

Skipped where the PostgreSQL server binaries or psycopg are missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "bench_senders.py"
COLUMNS = 11  # backend, senders and nine figures per row of the database work table


def _initdb_installed() -> bool:
    return bool(shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb"))


def test_bench_senders_prints_its_figures_and_each_recipient_got_one_copy() -> None:
    pytest.importorskip("psycopg")
    if not _initdb_installed():
        pytest.skip("PostgreSQL server binaries (initdb) are not installed")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    command = [sys.executable, str(BENCH), "--recipients", "60", "--senders", "1,2"]
    done = subprocess.run(
        [*command, "--connections", "2"], env=env, capture_output=True, text=True, timeout=600
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert out.startswith("nproc ")
    assert out.count("each recipient exactly once: yes") == 3  # PostgreSQL 1 and 2, SQLite 1
    assert out.count(" messages in ") == 3 and "speed-up x" in out
    assert "PostgreSQL: fsync=on, synchronous_commit=on" in out
    table = [
        line.split()
        for line in out.split("database work per delivered message", 1)[1].splitlines()
        if line.split()[:1] in (["postgresql"], ["sqlite"])
    ]
    assert [row[:2] for row in table] == [["postgresql", "1"], ["postgresql", "2"], ["sqlite", "1"]]
    assert all(len(row) == COLUMNS for row in table)
    assert all(cell != "-" for row in table[:2] for cell in row)  # the server's figures too
    assert "16 senders:" in out
    assert "load at the end" in out
