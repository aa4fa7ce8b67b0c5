"""Benchmark: ``send --dry-run`` to a big list: wall time and peak memory (it streams).

    python bench/bench_dry_run.py [--n 1000000] [--files 20000] [--dir DIR]

Setup (not measured): a workspace made from the repository's sample one, with a
minimal theme (one MJML column: greeting, one teaser, postal address, unsubscribe
link) so a message is about 6 KB, and N active subscribers, bulk-inserted.

Measured, each in a child process of its own (so setup memory never counts), the real
``deliver.dry_run`` as the CLI calls it, reporting wall time and peak RSS
(``ru_maxrss``):

- ``--files`` subscribers with real files (one .eml each, temporary name + rename,
  plus manifest.csv): what a dry run costs on this disk;
- N/10 and N subscribers through the same code path (recipients streamed from the
  database, every message personalised, manifest.csv written) with a writer that
  drops the message bytes instead of creating a file: a million files would need
  ~6 GB and, on this shared virtual disk, 2-3 ms per file creation (about an hour);
  the ``--files`` run shows that cost. Equal peak RSS at N/10 and N shows it streams.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_send import BENCH_KEY, copy_sample, populate

MJML = """<mjml>
  <mj-body>
    <mj-section>
      <mj-column>
        <mj-text>Hi {{ slot("greeting_name") }},</mj-text>
        {% for teaser in teasers %}
        <mj-text><a href="{{ teaser.url }}">{{ teaser.title }}</a><br>{{ teaser.summary }}</mj-text>
        {% endfor %}
        <mj-text>{{ publication.name }}, {{ publication.postal_address }}.
          <a href="{{ slot("unsubscribe_url") }}">Unsubscribe</a></mj-text>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>
"""
TEXT = """Hi {{ slot("greeting_name") }},
{% for teaser in teasers %}
{{ teaser.title }}
{{ teaser.summary }}
{{ teaser.url }}
{% endfor %}
{{ publication.name }}, {{ publication.postal_address }}
Unsubscribe: {{ slot("unsubscribe_url") }}
"""
ISSUE = {
    "subject": "The Weekly Brief",
    "date": "2026-11-27",
    "preheader": "One story this week",
    "intro": "",
    "teasers": [
        {
            "title": "The ferry timetable changes on Monday",
            "summary": "The winter timetable starts on Monday with two fewer crossings a day "
            "and a later first boat from the north pier.",
            "url": "https://news.example.org/ferry",
        }
    ],
}


def prepare(root: Path, count: int) -> None:
    copy_sample(root)
    (root / "templates").mkdir(exist_ok=True)
    (root / "templates" / "issue.mjml.j2").write_text(MJML, encoding="utf-8")
    (root / "templates" / "issue.txt.j2").write_text(TEXT, encoding="utf-8")
    folder = root / "issues" / "small"
    folder.mkdir(parents=True)
    (folder / "issue.json").write_text(json.dumps(ISSUE), encoding="utf-8")
    populate(root, count)


def _discard(path: Path, data: bytes) -> None:
    """A writer that keeps nothing (the message was built; no file is made)."""


def child(root: Path, out: Path, files: bool) -> dict[str, Any]:
    """The measured step: the real dry run -> wall seconds, peak RSS, files, bytes."""
    from newsletter.deliver import dry_run
    from newsletter.workspace import load_workspace

    ws = load_workspace(root)
    started = time.perf_counter()
    report = dry_run(ws, root / "issues" / "small", out, write=None if files else _discard)
    return {
        "wall_s": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "messages": report.count,
        "bytes_per_message": report.bytes // max(report.count, 1),
    }


def measure(root: Path, base: Path, files: bool) -> dict[str, Any]:
    out = base / "out"
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": BENCH_KEY}
    mode = "files" if files else "discard"
    try:
        done = subprocess.run(
            [sys.executable, __file__, "child", str(root), str(out), mode],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "child":
        print(json.dumps(child(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == "files")))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, help="where to work (default: a temporary folder)")
    args = parser.parse_args()
    os.environ["NEWSLETTER_SECRET_KEY"] = BENCH_KEY
    base = Path(tempfile.mkdtemp(prefix="bench-dry-run-", dir=args.dir))
    try:
        runs = ((args.files, True), (args.n // 10, False), (args.n, False))
        for count, files in ((count, files) for count, files in runs if count):
            root = base / f"ws-{count}-{int(files)}"
            started = time.perf_counter()
            prepare(root, count)
            setup = time.perf_counter() - started
            result = measure(root, base, files)
            writer = "files" if files else "discarding-writer"
            fields = " ".join(f"{key}={value}" for key, value in result.items())
            print(f"subscribers={count} writer={writer} setup_s={setup:.1f} {fields}", flush=True)
            shutil.rmtree(root, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
