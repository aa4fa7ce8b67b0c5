"""Helpers of the crash and race tests of recurring series: a loopback HTTP server that
serves the series' feed and answers chat completions, and can hold either request until
the test lets it go; a weekly series over that URL; ``run-due`` in a child process at a
frozen time (optionally waiting for a go line on stdin, to start racers together)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from series_fixtures import ITEM
from sqlalchemy import func, select

from http_servers import serving
from newsletter.store import open_store_for
from newsletter.store.campaigns import campaigns
from newsletter.store.occurrences import series_occurrences
from newsletter.workspace import Workspace, load_workspace

FEED_PATH = "/wire.xml"
CHAT_PATH = "/v1/chat/completions"


@dataclass
class Gate:
    """What the server serves, and which paths it holds: a request for a path in
    ``hold`` sets ``arrived`` and waits for ``release``."""

    url: str = ""
    feed: bytes = b""
    hold: set[str] = field(default_factory=set)
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    asked: list[str] = field(default_factory=list)

    def write_feed(self, items: list[tuple[str, str, str]]) -> None:
        """Serve a feed of ``items`` (title, slug, RFC 822 date), newest first."""
        body = "".join(ITEM.format(title=t, slug=s, date=d) for t, s, d in items)
        self.feed = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>\n'
            "<title>Wire</title><link>https://wire.example.org/</link>\n"
            f"{body}</channel></rss>\n"
        ).encode()


class _Handler(BaseHTTPRequestHandler):
    gate: Gate

    def _wait_if_held(self) -> None:
        self.gate.asked.append(self.path)
        if self.path in self.gate.hold:
            self.gate.arrived.set()
            self.gate.release.wait(60)

    def _answer(self, content_type: str, payload: bytes) -> None:
        try:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client was killed while we held it

    def do_GET(self) -> None:
        self._wait_if_held()
        self._answer("application/rss+xml", self.gate.feed)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self._wait_if_held()
        message = {"role": "assistant", "content": "Work goes on through the winter."}
        payload = json.dumps({"choices": [{"index": 0, "message": message}]}).encode()
        self._answer("application/json", payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def gate() -> Iterator[Gate]:
    """The feed and chat server on a loopback port, run in a thread."""
    state = Gate()
    handler = type("Handler", (_Handler,), {"gate": state})
    with serving(handler) as state.url:
        yield state
        state.release.set()


URL_SERIES = """
[[recurring]]
name = "weekly"
every = "friday 09:00"
sources = ["{url}{feed}"]
list = "main"
subject = "Brief #{{number}}: {{top_title}}"
review_before = "{review_before}"
review_to = [{review_to}]
"""


def url_series_workspace(
    root: Path, gate: Gate, *, review_before: str = "2h", llm: bool = False
) -> Workspace:
    """A weekly series (Fridays 09:00) over the gate's feed URL, reviewed by
    editor@example.org when ``review_before`` is set; teasers by the gate's chat API when
    ``llm`` -> the workspace, reloaded. Fetches may wait long: the tests hold them."""
    config = root / "newsletter.toml"
    text = config.read_text(encoding="utf-8").replace(
        "[compose]\n", "[compose]\nfetch_timeout = 120\n", 1
    )
    if llm:
        text = text.replace(
            'engine = "extractive"',
            f'engine = "llm"\nendpoint = "{gate.url}/v1"\nmodel = "m"\ntimeout_seconds = 120',
            1,
        )
    review_to = '"editor@example.org"' if review_before else ""
    config.write_text(
        text
        + URL_SERIES.format(
            url=gate.url, feed=FEED_PATH, review_before=review_before, review_to=review_to
        ),
        encoding="utf-8",
    )
    return load_workspace(root)


_CHILD = textwrap.dedent(
    """
    import sys, time_machine
    from datetime import datetime
    from newsletter.cli import cli
    if sys.argv[3] == "wait":
        sys.stdin.readline()
    with time_machine.travel(datetime.fromisoformat(sys.argv[2]), tick=True):
        cli.main(["-w", sys.argv[1], "run-due"], prog_name="newsletter")
    """
)


def run_due_child(ws: Workspace, at: datetime, *, wait: bool = False) -> subprocess.Popen[str]:
    """Start ``newsletter run-due`` for ``ws`` in a child process with the clock at ``at``
    (ticking); with ``wait`` it starts once a line arrives on its stdin."""
    import newsletter

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(newsletter.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]
    )
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(ws.root), at.isoformat(), "wait" if wait else "go"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def occurrence_states(ws: Workspace) -> list[tuple[str, int | None]]:
    """(state, number) of each occurrence of the series weekly, oldest first."""
    with open_store_for(ws) as store:
        found = series_occurrences(store, "weekly")
    return [(item.state, item.number) for item in reversed(found)]


def campaign_count(ws: Workspace) -> int:
    """How many campaigns the ledger holds."""
    with open_store_for(ws) as store, store.read() as conn:
        return int(conn.scalar(select(func.count()).select_from(campaigns)) or 0)


def issue_folders(ws: Workspace) -> list[str]:
    """The names of the folders under issues/."""
    return sorted(path.name for path in ws.issues_dir.iterdir())
