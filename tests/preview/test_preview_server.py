"""The real preview server on a free loopback port: HTTP routes, the watcher, the
Server-Sent Events stream, a clean stop with a stream still open, and Ctrl-C on the CLI."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from newsletter.preview import PreviewServer, open_preview
from newsletter.preview.server import KEEPALIVE_SECONDS
from newsletter.workspace import Workspace

FIXTURE_ISSUE = Path(__file__).resolve().parents[1] / "fixtures" / "preview_issue.json"
# Shorter than the server's keepalive, so a missing event fails the test instead of hanging it.
TIMEOUT = httpx.Timeout(KEEPALIVE_SECONDS - 5)


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
        rebound = client.get("/api/state", headers={"Host": "attacker.example"})

    assert page.status_code == 200 and 'id="frame-desktop"' in page.text
    assert "2026-03-03-tuesday-tide" in page.text
    assert state["version"] == 1 and state["error"] is None
    assert state["good"]["subject"] == "The Tuesday Tide — 3 March 2026"
    assert "A fishing harbour now heats the town behind it" in frame.text
    assert 'data-preview="dark-mode"' in dark.text and 'data-preview="dark-mode"' not in frame.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert missing.status_code == 404
    assert rebound.status_code == 400


def test_the_web_version_frame_is_the_archive_page_without_the_reader(
    server: PreviewServer,
) -> None:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        page = client.get("/")
        mail = client.get("/frame")
        web = client.get("/frame", params={"web": "1"})
        recipient = client.get("/api/state").json()["good"]["to"]["email"]
    assert 'id="frame-web"' in page.text and 'data-view="web"' in page.text
    assert "A fishing harbour now heats the town behind it" in web.text
    assert ">Subscribe</a>" in web.text and "Unsubscribe" not in web.text
    assert recipient in mail.text and recipient not in web.text
    assert "View in your browser" in mail.text and "View in your browser" not in web.text


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


class _Lines:
    """The stdout lines of a process, read by a thread so a wait can have a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def next(self, timeout: float = 60) -> str:
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no output line within {timeout} s")
        assert line is not None, "the process ended early"
        return line

    def rest(self) -> str:
        """Every remaining line, once the process has ended."""
        self._thread.join(timeout=30)
        lines = []
        while (line := self._queue.get_nowait()) is not None:
            lines.append(line)
        return "".join(lines)


@pytest.mark.e2e
def test_cli_prints_the_url_opens_the_browser_and_stops_cleanly_on_ctrl_c(
    workspace_dir: Path, issue_dir: Path
) -> None:
    # webbrowser honours $BROWSER: this "browser" writes the URL it got to our stdout
    fake_browser = f"{sys.executable} -c \"import sys; print('browser got', sys.argv[1])\" %s"
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
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BROWSER": fake_browser},
    )
    try:
        lines = _Lines(proc)
        line = lines.next()
        assert line.startswith(f"previewing {issue_dir} at http://127.0.0.1:")
        url = line.split(" at ", 1)[1].split()[0]
        assert lines.next() == f"browser got {url}\n"
        with (
            httpx.Client(base_url=url, timeout=TIMEOUT) as client,
            client.stream("GET", "/events") as stream,
        ):
            assert client.get("/api/state").json()["version"] == 1
            assert next(sse_versions(stream.iter_lines())) == 1
            proc.send_signal(signal.SIGINT)  # with an event stream still open
            proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert proc.returncode == 0, err
    assert lines.rest() == "preview stopped (1 render)\n"
    assert "Traceback" not in err


def test_a_templates_folder_created_later_is_watched(workspace: Workspace, issue_dir: Path) -> None:
    shutil.rmtree(workspace.templates_dir)
    state = open_preview(workspace, issue_dir)
    preview = PreviewServer(state, port=0)
    preview.start_in_thread()
    try:
        with (
            httpx.Client(base_url=preview.url, timeout=TIMEOUT) as client,
            client.stream("GET", "/events") as stream,
        ):
            versions = sse_versions(stream.iter_lines())
            assert next(versions) == 1
            workspace.templates_dir.mkdir()
            template = workspace.templates_dir / "issue.txt.j2"
            template.write_text("First edition of the text part\n", encoding="utf-8")
            for _ in versions:  # the folder and the file may come as one change or two
                text = client.get("/api/state").json()["good"]["text"]
                if text.startswith("First edition"):
                    break
            # now an edit inside the new folder is seen by the watcher
            template.write_text("Second edition of the text part\n", encoding="utf-8")
            for _ in versions:
                text = client.get("/api/state").json()["good"]["text"]
                if text.startswith("Second edition"):
                    break
    finally:
        preview.stop()
        state.close()
    assert text.startswith("Second edition")


def test_a_405_names_the_methods_the_address_answers(server: PreviewServer) -> None:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        page = client.post("/")
        check = client.get("/api/check-links")
    assert page.status_code == check.status_code == 405
    assert {m.strip() for m in page.headers["allow"].split(",")} == {"GET", "HEAD"}
    assert check.headers["allow"] == "POST"


def test_the_link_check_answers_only_this_runs_page(server: PreviewServer) -> None:
    port = server.url.rstrip("/").rsplit(":", 1)[1]
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        page = client.get("/").text
        token = re.search(r'name="preview-token" content="([^"]+)"', page)
        assert token
        good = {"X-Preview-Token": token.group(1)}
        refused = [
            client.post("/api/check-links"),
            client.post("/api/check-links", headers={"X-Preview-Token": "guess"}),
            client.post("/api/check-links", headers={**good, "Origin": "https://attacker.example"}),
            client.post("/api/check-links", headers={**good, "Origin": "http://localhost:1"}),
            # a name rebound to 127.0.0.1 by DNS, or another port, is not this server
            client.post("/api/check-links", headers={**good, "Host": "localhost:1"}),
        ]
        other = PreviewServer(server.app.state, port=0)  # another run, another token
        assert other.app.api_token != token.group(1)
        other._socket.close()
    assert [answer.status_code for answer in refused] == [403] * 5
    assert f"127.0.0.1:{port}" in server.app.hosts


def test_frames_show_the_issues_hosted_pictures_from_its_media_folder(
    workspace: Workspace, issue_dir: Path
) -> None:
    name = "0123456789abcdef0123.png"
    picture = b"\x89PNG\r\n\x1a\n-the-hosted-picture-"
    (issue_dir / "media").mkdir()
    (issue_dir / "media" / name).write_bytes(picture)
    hosted = f"{workspace.base_url}/media/{name}"
    data = json.loads((issue_dir / "issue.json").read_text(encoding="utf-8"))
    data["teasers"][0]["image"] = hosted
    (issue_dir / "issue.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    before = (issue_dir / "issue.json").read_bytes()
    state = open_preview(workspace, issue_dir)
    preview = PreviewServer(state, port=0)
    preview.start_in_thread()
    try:
        with httpx.Client(base_url=preview.url, timeout=TIMEOUT) as client:
            frames = [client.get("/frame", params=query).text for query in ({}, {"web": "1"})]
            image = client.get(f"/media/{name}")
            missing = client.get("/media/ffffffffffffffffffff.png")
            outside = client.get("/media/issue.json")
    finally:
        preview.stop()
        state.close()
    for frame in frames:
        assert f'src="/media/{name}"' in frame and hosted not in frame
    assert image.status_code == 200 and image.content == picture
    assert image.headers["content-type"] == "image/png"
    assert missing.status_code == 404 and outside.status_code == 404
    assert (issue_dir / "issue.json").read_bytes() == before
