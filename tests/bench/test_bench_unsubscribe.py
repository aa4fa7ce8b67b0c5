"""The serve-under-load benchmark runs end to end with tiny numbers, on SQLite and on
PostgreSQL: it exits 0, prints its figures and its safety check passes. It asserts no
speed: the figures are for people reading them, not for a test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "bench_unsubscribe.py"
TINY = ["--recipients", "300", "--posts", "60", "--clients", "8", "--max-seconds", "60"]


def _run(*options: str) -> str:
    """Run the benchmark -> its output; fails the test on a non-zero exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run(
        [sys.executable, str(BENCH), *TINY, *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _figures(output: str, label: str) -> None:
    """The figure lines of one load: requests/s, latency, errors, CPU."""
    assert re.search(rf"^{label} x8 clients: \d+ requests in [\d.]+ s = \d+ req/s$", output, re.M)
    assert re.search(r"^  latency p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms$", output, re.M)
    assert re.search(r"^  serve process CPU: [\d.]+ ms per request$", output, re.M)
    assert re.search(r"^  load client CPU: [\d.]+ ms per request$", output, re.M)


def _safe(output: str) -> None:
    """The safety check passed and every answered unsubscribe is in the database."""
    assert "\nPASS - nothing sent after an answered unsubscribe\n" in output
    assert "  errors (not 200): 0\n" in output
    assert "  unsubscribed per the database: 60 of 60 answered 200\n" in output


def test_the_benchmark_runs_on_sqlite() -> None:
    output = _run("--get")
    _figures(output, "confirmation page GET")
    _figures(output, "one-click POST")
    # serve marks each leaver's waiting row skipped (one already sent, on a busy
    # machine, stays sent: the safety check below says it went before the answer)
    assert re.search(r"^send finished \(exit 0\): sent \d+, ", output, re.M)
    assert re.search(r"^  ledger rows of the unsubscribed: \{.*'skipped': \d+", output, re.M)
    _safe(output)


def test_the_benchmark_runs_on_postgresql(pg_server: str) -> None:
    output = _run("--database-url", pg_server.format(db="postgres"))
    _figures(output, "one-click POST")
    _safe(output)
