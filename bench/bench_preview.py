"""Reload latency of `newsletter preview`: from saving issue.json to the page showing it.

Starts the real preview server on a free loopback port over a throwaway copy of the
sample workspace, opens the page in headless Chromium (Debian's, via Playwright), then
N times: takes a wall-clock timestamp, rewrites issue.json with a new first headline,
and waits until BOTH frames (600 px and 375 px) have loaded a document containing it.
The moment is taken page-side, by the frame's load handler (data-loaded-at, epoch ms),
so Playwright's polling adds nothing to the figure.

    python bench/bench_preview.py [--runs 10] [--chromium /usr/bin/chromium]

Prints every latency and the median, and how much of it the server side takes
(watcher + render) against the render alone.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from newsletter.preview import PreviewServer, open_preview
from newsletter.workspace import load_workspace

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # the issue's images live on invented hosts: fail them at once, in the browser itself
    # (a Playwright route would send every request through this process and skew the figure)
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]

# The moment both frames finished loading a document with the marker, or false.
SHOWN_AT = """([marker, since]) => {
  let latest = 0;
  for (const id of ["frame-desktop", "frame-phone"]) {
    const frame = document.getElementById(id);
    const doc = frame.contentDocument;
    const at = Number(frame.dataset.loadedAt || 0);
    if (!doc || !doc.body || !doc.body.innerText.includes(marker) || at < since) return false;
    latest = Math.max(latest, at);
  }
  return latest;
}"""


def bench_issue(title: str) -> dict[str, object]:
    """An invented six-teaser issue whose first headline is ``title``."""
    teasers = [
        {
            "title": title if number == 0 else f"Story {number}: the tide tables, read aloud",
            "summary": (
                "A volunteer choir on the north coast now sings the week's tide tables on the "
                "harbour radio every Sunday evening, and the fishermen say they have never "
                "missed a low tide since. The recordings are kept in the town library."
            ),
            "url": f"https://coast.example.org/bench/{number}",
            "image": f"https://img.example.org/bench/{number}.jpg",
            "image_alt": "A harbour at low tide",
            "byline": "Bench Writer",
            "published": "2026-03-01",
            "source": "bench",
        }
        for number in range(6)
    ]
    return {
        "subject": "Bench issue",
        "preheader": "Six stories, one benchmark",
        "date": "2026-03-03",
        "intro": "Measuring how fast the preview follows a save.",
        "teasers": teasers,
    }


def make_workspace(root: Path) -> Path:
    """A copy of the sample workspace's config and templates under ``root``; -> issue folder."""
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    shutil.copytree(REPO / "templates", root / "templates")
    issue_dir = root / "issues" / "2026-03-03-bench"
    issue_dir.mkdir(parents=True)
    write_issue(issue_dir, "Bench start")
    return issue_dir


def write_issue(issue_dir: Path, title: str) -> None:
    text = json.dumps(bench_issue(title), ensure_ascii=False, indent=2)
    (issue_dir / "issue.json").write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temp:
        issue_dir = make_workspace(Path(temp))
        workspace = load_workspace(Path(temp))
        state = open_preview(workspace, issue_dir)
        server = PreviewServer(state, port=0)
        server.start_in_thread()
        latencies: list[float] = []
        render_ms: list[float] = []
        server_ms: list[float] = []
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=args.chromium, args=CHROMIUM_ARGS
                )
                page = browser.new_page(viewport={"width": 1480, "height": 1000})
                page.goto(server.url)
                page.wait_for_function(SHOWN_AT, arg=["Bench start", 0])
                for run in range(args.runs):
                    marker = f"Bench headline {run} {time.time_ns()}"
                    started = time.time() * 1000
                    write_issue(issue_dir, marker)
                    shown = page.wait_for_function(SHOWN_AT, arg=[marker, started], timeout=10_000)
                    latencies.append(float(shown.json_value()) - started)
                    good = state.snapshot.good
                    render_ms.append(good.render_ms if good else float("nan"))
                    server_ms.append(good.rendered_at * 1000 - started if good else float("nan"))
                browser.close()
        finally:
            server.stop()

    print(f"preview reload latency, save -> both frames show it ({args.runs} runs)")
    print("runs (ms):  " + " ".join(f"{value:.0f}" for value in latencies))
    print(f"median:     {statistics.median(latencies):.0f} ms")
    print(f"min / max:  {min(latencies):.0f} / {max(latencies):.0f} ms")
    server_side, render = statistics.median(server_ms), statistics.median(render_ms)
    print(f"server (median): save -> rendered {server_side:.0f} ms, render alone {render:.0f} ms")
    print("the rest is the event stream, the state fetch and loading both frames")


if __name__ == "__main__":
    main()
