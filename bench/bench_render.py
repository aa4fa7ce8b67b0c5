"""Benchmark: render one 10-teaser issue N times; median milliseconds per stage.

    python bench/bench_render.py [-n 30]

Uses the repository's sample workspace config and the golden sample issue grown to
ten teasers. Stages are timed separately (Jinja, mjml-python, premailer, text part) so
premailer's share of a render shows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

from newsletter.models import Issue, Teaser
from newsletter.render.pipeline import StageTimes, render_issue
from newsletter.workspace import load_workspace

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tests" / "golden" / "sample_issue.json"


def ten_teaser_issue() -> Issue:
    """The golden sample issue grown to ten distinct teasers."""
    data = json.loads(SAMPLE.read_text(encoding="utf-8"))
    base = [Teaser.from_dict(item) for item in data["teasers"]]
    teasers = [
        replace(
            base[n % len(base)],
            title=f"{base[n % len(base)].title} ({n + 1})",
            url=f"https://news.example.org/story-{n + 1}",
        )
        for n in range(10)
    ]
    return Issue(
        subject=data["subject"],
        date=data["date"],
        preheader=data["preheader"],
        intro=data["intro"],
        teasers=teasers,
    )


def main() -> None:
    """Run the benchmark and print the median figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="renders to time (default 30)")
    args = parser.parse_args()

    ws = load_workspace(REPO, environ={})
    issue = ten_teaser_issue()
    render_issue(ws, issue)  # warm-up: imports, first template compile

    totals, stages = [], []
    html_bytes = 0
    for _ in range(args.n):
        times = StageTimes()
        started = time.perf_counter()
        rendered = render_issue(ws, issue, times=times)
        totals.append(time.perf_counter() - started)
        stages.append(times)
        html_bytes = len(rendered.html.encode("utf-8"))

    def median_ms(values: list[float]) -> float:
        return statistics.median(values) * 1000

    total = median_ms(totals)
    premailer = median_ms([s.premailer for s in stages])
    print(f"render of a 10-teaser issue, {args.n} runs, HTML {html_bytes / 1024:.1f} KB")
    print(f"  total      median {total:8.2f} ms")
    print(f"  jinja      median {median_ms([s.jinja for s in stages]):8.2f} ms")
    print(f"  mjml       median {median_ms([s.mjml for s in stages]):8.2f} ms")
    print(f"  premailer  median {premailer:8.2f} ms  ({premailer / total:.0%} of total)")
    print(f"  text part  median {median_ms([s.text for s in stages]):8.2f} ms")


if __name__ == "__main__":
    main()
