"""compose/llm.py: LLM teasers from a real chat completions server on loopback (our own,
no model): a faithful reply is used, an unfaithful one, a timeout and every error fall
back to the lead with a warning, answers are cached, the API key goes out only when set."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from http_servers import serving
from newsletter.compose.build import ComposeResult, compose_issue, extract_source
from newsletter.compose.ingest import read_source
from newsletter.compose.llm import CACHE_DIR, MAX_PROMPT_WORDS, LlmSettings, prompt_messages
from newsletter.compose.summarize import summarize
from newsletter.models import Article
from newsletter.workspace import Workspace, load_workspace

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llm"
FERRY = FIXTURES / "ferry.md"
TRAIN = FIXTURES / "night-train.md"
FAITHFUL = (
    "From 14 March, the ferry between Kirkwall and Shapinsay runs on tidal power, cutting "
    "its diesel use by 40%. The £3.5 million refit serves about 1,200 passengers a week, "
    "says engineer Jane Muir."
)
UNFAITHFUL = "The Shapinsay ferry runs on the tides from 15 March, says harbour master Tom Flett."
API_KEY = "sk-test-0123456789abcdef"


@dataclass
class ChatServer:
    """What the server answers and what it was asked."""

    url: str = ""
    content: str = FAITHFUL
    status: int = 200
    raw: bytes | None = None
    hang: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    chat: ChatServer

    def do_POST(self) -> None:
        chat = self.chat
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        chat.requests.append(
            {"path": self.path, "authorization": self.headers.get("Authorization"), "body": body}
        )
        chat.received.set()
        if chat.hang:
            chat.release.wait(30)
        if chat.raw is not None:
            payload = chat.raw
        elif chat.status != 200:
            payload = json.dumps({"error": {"message": "model crashed"}}).encode()
        else:
            message = {"role": "assistant", "content": chat.content}
            payload = json.dumps({"choices": [{"index": 0, "message": message}]}).encode()
        try:
            self.send_response(chat.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up (the timeout test)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    """A chat completions server on a loopback port, run in a thread."""
    state = ChatServer()
    handler = type("Handler", (_Handler,), {"chat": state})
    with serving(handler) as base:
        state.url = f"{base}/v1"
        yield state
        state.release.set()


def _llm_workspace(root: Path, endpoint: str, *, timeout: float = 10, model: str = "m") -> None:
    """Set the workspace's [summarize] section to ask ``endpoint``."""
    path = root / "newsletter.toml"
    text = re.sub(r"^\[summarize\]\n(?:[^\[].*\n|\n)*", "", path.read_text("utf-8"), flags=re.M)
    path.write_text(
        f'{text}\n[summarize]\nengine = "llm"\nendpoint = "{endpoint}"\nmodel = "{model}"\n'
        f"timeout_seconds = {timeout}\n",
        encoding="utf-8",
    )


@pytest.fixture
def llm_ws(workspace_dir: Path, chat: ChatServer, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-key-not-secret")
    _llm_workspace(workspace_dir, chat.url)
    return load_workspace(workspace_dir)


def _compose(ws: Workspace, *sources: Path) -> ComposeResult:
    return compose_issue(
        ws,
        [str(source) for source in sources],
        subject="Test",
        intro="",
        preheader="",
        out=None,
        skip_bad=False,
        allow_repeats=True,  # the same articles again: the cache is what is tested
    )


def _lead(path: Path, ws: Workspace) -> str:
    [article] = read_source(str(path))
    compose = ws.config.compose
    return summarize(
        article.text,
        min_words=compose.summary_min_words,
        max_words=compose.summary_max_words,
        title=article.title,
    )


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_faithful_reply_is_the_teaser(llm_ws: Workspace, chat: ChatServer) -> None:
    chat.content = f'Here is a teaser:\n\n"**{FAITHFUL}**"'
    result = _compose(llm_ws, FERRY)
    assert result.issue.teasers[0].summary == FAITHFUL
    [request] = chat.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["authorization"] is None
    body = request["body"]
    assert body["model"] == "m" and body["temperature"] == 0
    prompt = body["messages"][-1]["content"]
    assert "A tidal-powered ferry for Shapinsay" in prompt and "Jane Muir" in prompt
    assert "40 to 60 words" in prompt and "language the article is written in" in prompt


def test_a_second_compose_asks_nothing(
    llm_ws: Workspace, chat: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    chat.content = FAITHFUL
    first = _compose(llm_ws, FERRY, TRAIN)
    assert len(chat.requests) == 2
    assert len(list((llm_ws.root / CACHE_DIR).glob("*.json"))) == 2
    chat.status = 500  # a server that now fails is not reached: the answers are cached
    caplog.clear()
    second = _compose(llm_ws, FERRY, TRAIN)
    assert len(chat.requests) == 2
    assert [t.summary for t in second.issue.teasers] == [t.summary for t in first.issue.teasers]
    # the cached train teaser names the ferry's people: checked again, and refused again
    assert second.issue.teasers[1].summary == _lead(TRAIN, llm_ws)
    assert any("Kirkwall" in warning for warning in _warnings(caplog))


def test_another_model_is_asked_again(workspace_dir: Path, chat: ChatServer) -> None:
    _llm_workspace(workspace_dir, chat.url, model="one")
    _compose(load_workspace(workspace_dir, environ={"NEWSLETTER_SECRET_KEY": "k"}), FERRY)
    text = (workspace_dir / "newsletter.toml").read_text(encoding="utf-8")
    (workspace_dir / "newsletter.toml").write_text(text.replace('"one"', '"two"'), "utf-8")
    _compose(load_workspace(workspace_dir, environ={"NEWSLETTER_SECRET_KEY": "k"}), FERRY)
    assert [request["body"]["model"] for request in chat.requests] == ["one", "two"]


def test_an_unfaithful_reply_falls_back_with_a_warning(
    llm_ws: Workspace, chat: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    chat.content = UNFAITHFUL
    result = _compose(llm_ws, FERRY)
    assert result.issue.teasers[0].summary == _lead(FERRY, llm_ws)
    [warning] = [w for w in _warnings(caplog) if "LLM teaser" in w]
    assert "'15 March'" in warning and "'Tom Flett'" in warning and "ferry.md" in warning


def test_a_given_summary_wins_and_asks_nothing(
    llm_ws: Workspace, chat: ChatServer, tmp_path: Path
) -> None:
    page = tmp_path / "given.md"
    text = FERRY.read_text(encoding="utf-8")
    page.write_text(text.replace("---\n\n", "summary: The island's own words.\n---\n\n", 1))
    result = _compose(llm_ws, page)
    assert result.issue.teasers[0].summary == "The island's own words."
    assert chat.requests == []


def test_a_timeout_falls_back_once_per_compose(
    workspace_dir: Path, chat: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    chat.hang = True  # the server holds every answer until the test ends
    _llm_workspace(workspace_dir, chat.url, timeout=0.5)
    ws = load_workspace(workspace_dir, environ={"NEWSLETTER_SECRET_KEY": "k"})
    result = _compose(ws, FERRY, TRAIN)
    assert chat.received.is_set()
    assert [t.summary for t in result.issue.teasers] == [_lead(FERRY, ws), _lead(TRAIN, ws)]
    assert len(chat.requests) == 1  # a server that failed is not asked again
    [warning] = _warnings(caplog)
    assert "no complete answer within 0.5 s" in warning and chat.url in warning


@pytest.mark.parametrize(
    ("status", "raw", "content", "reason"),
    [
        (500, None, "", "HTTP 500 Internal Server Error: model crashed"),
        (404, None, "", "HTTP 404 Not Found: model crashed"),
        (200, b"<html>not json</html>", "", "not a chat completion"),
        (200, b'{"choices": []}', "", "not a chat completion"),
        (200, None, "  \n ", "reply was empty"),
    ],
)
def test_errors_fall_back_with_one_warning(
    llm_ws: Workspace,
    chat: ChatServer,
    caplog: pytest.LogCaptureFixture,
    status: int,
    raw: bytes | None,
    content: str,
    reason: str,
) -> None:
    chat.status, chat.raw, chat.content = status, raw, content
    result = _compose(llm_ws, FERRY, TRAIN)
    assert [t.summary for t in result.issue.teasers] == [
        _lead(FERRY, llm_ws),
        _lead(TRAIN, llm_ws),
    ]
    assert len(chat.requests) == 1
    [warning] = _warnings(caplog)
    assert reason in warning
    assert not (llm_ws.root / CACHE_DIR).exists()  # a failure is asked again next time


def test_a_refused_connection_falls_back(
    workspace_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _llm_workspace(workspace_dir, f"http://127.0.0.1:{port}/v1/chat/completions")
    ws = load_workspace(workspace_dir, environ={"NEWSLETTER_SECRET_KEY": "k"})
    result = _compose(ws, FERRY)
    assert result.issue.teasers[0].summary == _lead(FERRY, ws)
    [warning] = _warnings(caplog)
    assert "cannot connect" in warning


def test_the_api_key_is_sent_when_set_and_never_written(
    workspace_dir: Path, chat: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _llm_workspace(workspace_dir, chat.url)
    environ = {"NEWSLETTER_SECRET_KEY": "k", "NEWSLETTER_LLM_API_KEY": API_KEY}
    ws = load_workspace(workspace_dir, environ=environ)
    assert API_KEY not in repr(ws)
    chat.content = UNFAITHFUL  # a warning is logged too
    result = _compose(ws, FERRY)
    assert [request["authorization"] for request in chat.requests] == [f"Bearer {API_KEY}"]
    assert API_KEY not in caplog.text
    written = [path for path in workspace_dir.rglob("*") if path.is_file()]
    assert result.folder in [path.parent for path in written]
    assert not [path for path in written if API_KEY.encode() in path.read_bytes()]


def test_extract_shows_the_llm_teaser(llm_ws: Workspace, chat: ChatServer) -> None:
    [item] = extract_source(llm_ws, str(FERRY))
    assert item["summary"] == FAITHFUL
    assert len(chat.requests) == 1


def test_the_prompt_holds_a_sane_amount_of_article() -> None:
    text = "\n\n".join(["ipsum " * 100] * (MAX_PROMPT_WORDS // 100 * 3))
    article = Article(title="Long", text=text, source="x")
    settings = LlmSettings(url="http://h/v1", model="m", timeout=1, min_words=40, max_words=60)
    prompt = prompt_messages(article, settings)[-1]["content"]
    assert prompt.count("ipsum") == MAX_PROMPT_WORDS
    # the 15 paragraphs kept, each but the first after a blank line
    assert prompt.count("\n\nipsum") == MAX_PROMPT_WORDS // 100 - 1


@pytest.mark.e2e
def test_the_cli_warns_in_one_line_and_never_shows_the_key(
    workspace_dir: Path, chat: ChatServer
) -> None:
    chat.status = 500
    _llm_workspace(workspace_dir, chat.url)
    environ = {**os.environ, "NEWSLETTER_SECRET_KEY": "k", "NEWSLETTER_LLM_API_KEY": API_KEY}
    done = subprocess.run(
        [sys.executable, "-m", "newsletter", "compose", str(FERRY), str(TRAIN)],
        cwd=workspace_dir,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "composed 2 teasers" in done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: LLM teasers from"), done.stderr
    assert "HTTP 500" in lines[0] and API_KEY not in done.stderr + done.stdout
