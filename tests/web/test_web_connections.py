"""Slow clients against a real ``serve`` on loopback: deadlines, the connection cap and
log lines that cannot flood.
"""

from __future__ import annotations

import importlib.util
import logging
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from newsletter.store import open_store_for
from newsletter.web import connections
from newsletter.web.connections import ConnectionLimits, RepeatFilter, guarded_protocol
from newsletter.web.server import ServeServer
from newsletter.workspace import Workspace, load_workspace

# long enough that a closed connection is a failed test, not a slow machine
PATIENCE = 15.0


def _serve(workspace_dir: Path, monkeypatch: pytest.MonkeyPatch, settings: str) -> Workspace:
    config = workspace_dir / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[serve]\n", f"[serve]\n{settings}\n"), encoding="utf-8")
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-key-not-secret")
    return load_workspace(workspace_dir)


HTTPTOOLS = importlib.util.find_spec("httptools") is not None


@pytest.fixture(
    params=[
        "h11",
        pytest.param(
            "httptools",
            marks=pytest.mark.skipif(not HTTPTOOLS, reason="httptools is not installed"),
        ),
    ]
)
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each guard test runs over both of uvicorn's HTTP parsers serve may use."""
    monkeypatch.setattr(connections, "DEFAULT_PARSER", request.param)
    return str(request.param)


@pytest.fixture
def serving(
    request: pytest.FixtureRequest,
    workspace_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    parser: str,
) -> Iterator[ServeServer]:
    ws = _serve(workspace_dir, monkeypatch, request.param)
    with open_store_for(ws) as store:
        server = ServeServer(ws, store=store, scheduler=False)
        server.start_in_thread()
        yield server
        server.stop()


def _connect(server: ServeServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=PATIENCE)
    return sock


def _closed(sock: socket.socket) -> bool:
    """Whether the server closes ``sock`` within PATIENCE (reads until end of stream)."""
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def _trickler(server: ServeServer) -> socket.socket:
    """A kept-alive connection (one full request answered) now sending half a header."""
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    answer = b""
    while not answer.endswith(b"\r\n\r\nok"):  # headers and body may come apart
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200")
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: loc")
    return sock


@pytest.mark.parametrize(
    "serving", ["header_timeout_seconds = 0.3\nbody_timeout_seconds = 0.3"], indirect=True
)
def test_clients_that_trickle_headers_or_a_body_are_closed_at_the_deadline(
    serving: ServeServer,
) -> None:
    fresh = _connect(serving)  # sends nothing at all
    fresh.sendall(b"G")
    headers = _trickler(serving)
    body = _connect(serving)
    body.sendall(
        b"POST /subscribe HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
        b"application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nemail=a"
    )
    silent = _connect(serving)
    assert _closed(fresh) and _closed(headers) and _closed(body) and _closed(silent)
    assert httpx.get(f"{serving.url}/healthz", timeout=PATIENCE).text == "ok"


@pytest.mark.parametrize(
    "serving", ["header_timeout_seconds = 60\nmax_connections = 4"], indirect=True
)
def test_at_the_connection_cap_a_request_takes_the_place_of_a_slow_client(
    serving: ServeServer,
) -> None:
    tricklers = [_trickler(serving) for _ in range(4)]
    for _ in range(3):
        answer = httpx.get(f"{serving.url}/healthz", timeout=PATIENCE)
        assert answer.status_code == 200 and answer.text == "ok"
    # the one that made room was closed by the server: it turns readable (end of stream)
    readable, _, _ = select.select(tricklers, [], [], PATIENCE)
    assert readable and all(_closed(sock) for sock in readable)


def test_repeated_log_lines_are_limited_and_counted() -> None:
    now = [0.0]
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("test.repeats")
    logger.propagate = False
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.addFilter(RepeatFilter(3, 60.0, clock=lambda: now[0]))
    try:
        for fd in range(1000):
            logger.error("socket.accept() out of system resource\nsocket: fd=%d", fd)
        logger.warning("something else")
        now[0] = 61.0
        logger.error("socket.accept() out of system resource\nsocket: fd=%d", 5)
    finally:
        logger.removeHandler(handler)
    lines = [record.getMessage() for record in records]
    assert len(lines) == 5
    assert lines[3] == "something else"
    assert lines[4].endswith("(997 more like this were not logged)")


def test_serve_uses_the_httptools_parser_when_it_is_installed() -> None:
    protocol = guarded_protocol(ConnectionLimits(10.0, 30.0, 500))
    base = "HttpToolsProtocol" if HTTPTOOLS else "H11Protocol"
    assert base in [cls.__name__ for cls in protocol.__mro__]
