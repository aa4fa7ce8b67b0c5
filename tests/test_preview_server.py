"""The real preview server on a free loopback port: HTTP routes, the watcher, the
Server-Sent Events stream, a clean stop with a stream still open, and Ctrl-C on the CLI."""

from __future__ import annotations

import json
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from newsletter.preview import PreviewServer, open_preview
from newsletter.workspace import Workspace

FIXTURE_ISSUE = Path(__file__).resolve().parent / "fixtures" / "preview_issue.json"
TIMEOUT = httpx.Timeout(15.0)


@pytest.fixture
def issue_dir(workspace: Workspace) -> Path:
    folder = workspace.issues_dir / "2026-03-03-tuesday-tide"
    folder.mkdir(parents=True)
    shutil.copy(FIXTURE_ISSUE, folder / "issue.json")
    return folder


@pytest.fixture
def server(workspace: Workspace, issue_dir: Path) -> Iterator[PreviewServer]:
    state = open_preview(workspace, issue_dir)
    preview = PreviewServer(state, port=0)
    preview.start_in_thread()
    yield preview
    preview.stop()
    state.close()


def rename_first_teaser(folder: Path, title: str) -> None:
    data = json.loads((folder / "issue.json").read_text(encoding="utf-8"))
    data["teasers"][0]["title"] = title
    (folder / "issue.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def sse_versions(lines: Iterator[str]) -> Iterator[int]:
    """The data of each ``version`` event in an SSE line stream."""
    event = None
    for line in lines:
        if line.startswith("event:"):
            event = line.partition(":")[2].strip()
        elif line.startswith("data:") and event == "version":
            yield int(line.partition(":")[2])
        elif not line:
            event = None


def test_routes_serve_page_state_frames_and_assets(server: PreviewServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        page = client.get("/")
        state = client.get("/api/state").json()
        frame = client.get("/frame")
        dark = client.get("/frame", params={"dark": "1"})
        script = client.get("/assets/preview.js")
        missing = client.get("/assets/secrets.txt")

    assert page.status_code == 200 and 'id="frame-desktop"' in page.text
    assert "2026-03-03-tuesday-tide" in page.text
    assert state["version"] == 1 and state["error"] is None
    assert state["good"]["subject"] == "The Tuesday Tide — 3 March 2026"
    assert "A fishing harbour now heats the town behind it" in frame.text
    assert 'data-preview="dark-mode"' in dark.text and 'data-preview="dark-mode"' not in frame.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert missing.status_code == 404


def test_saving_issue_json_announces_a_new_version(server: PreviewServer, issue_dir: Path) -> None:
    with (
        httpx.Client(base_url=server.url, timeout=TIMEOUT) as client,
        client.stream("GET", "/events") as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        versions = sse_versions(stream.iter_lines())
        assert next(versions) == 1

        rename_first_teaser(issue_dir, "Harbour heat reaches the school")
        assert next(versions) == 2
        state = client.get("/api/state").json()

    assert state["good"]["version"] == 2
    assert "Harbour heat reaches the school" in state["good"]["text"]


def test_a_broken_then_fixed_file_reports_and_recovers(
    server: PreviewServer, issue_dir: Path
) -> None:
    good_text = (issue_dir / "issue.json").read_text(encoding="utf-8")
    with (
        httpx.Client(base_url=server.url, timeout=TIMEOUT) as client,
        client.stream("GET", "/events") as stream,
    ):
        versions = sse_versions(stream.iter_lines())
        assert next(versions) == 1
        (issue_dir / "issue.json").write_text(good_text.replace("[", "", 1), encoding="utf-8")
        assert next(versions) == 2
        broken = client.get("/api/state").json()
        frame = client.get("/frame").text

        (issue_dir / "issue.json").write_text(good_text, encoding="utf-8")
        assert next(versions) == 3
        fixed = client.get("/api/state").json()

    assert "issue.json" in broken["error"] and "line" in broken["error"]
    assert broken["good"]["version"] == 1
    assert "A fishing harbour now heats the town behind it" in frame
    assert fixed["error"] is None and fixed["good"]["version"] == 3


def test_stop_ends_open_event_streams(workspace: Workspace, issue_dir: Path) -> None:
    preview = PreviewServer(open_preview(workspace, issue_dir), port=0)
    preview.start_in_thread()
    with (
        httpx.Client(base_url=preview.url, timeout=TIMEOUT) as client,
        client.stream("GET", "/events") as stream,
    ):
        versions = sse_versions(stream.iter_lines())
        assert next(versions) == 1
        preview.stop()
        # the stream ends instead of holding the shutdown until its timeout
        assert list(versions) == []
    assert preview.ready.is_set()


def _read_line(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
            proc.kill()
            pytest.fail("the preview printed no URL in time")
    return proc.stdout.readline()


@pytest.mark.e2e
def test_cli_prints_the_url_serves_and_stops_cleanly_on_ctrl_c(
    workspace_dir: Path, issue_dir: Path
) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "newsletter",
            "-w",
            str(workspace_dir),
            "preview",
            str(issue_dir),
            "--port",
            "0",
            "--no-open",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _read_line(proc, time.monotonic() + 60)
        assert line.startswith(f"previewing {issue_dir} at http://127.0.0.1:")
        url = line.split(" at ", 1)[1].split()[0]
        with (
            httpx.Client(base_url=url, timeout=TIMEOUT) as client,
            client.stream("GET", "/events") as stream,
        ):
            assert client.get("/api/state").json()["version"] == 1
            assert next(sse_versions(stream.iter_lines())) == 1
            proc.send_signal(signal.SIGINT)  # with an event stream still open
            out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "preview stopped (1 render)" in out
    assert "Traceback" not in err
