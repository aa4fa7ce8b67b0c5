"""Shared fixtures: a throwaway workspace copied from the sample one, a throwaway
PostgreSQL cluster (one per test session), a browser."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from newsletter.workspace import Workspace, load_workspace

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    # this machine's network is closed: no background calls home, no component updates
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # pages show images on invented hosts: fail them at once instead of waiting on DNS
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's real NEWSLETTER_* settings."""
    for name in (
        "NEWSLETTER_SMTP_URL",
        "NEWSLETTER_DATABASE_URL",
        "NEWSLETTER_SECRET_KEY",
        "NEWSLETTER_BASE_URL",
        "NEWSLETTER_DKIM_KEY",
        "NEWSLETTER_LLM_API_KEY",
        "NEWSLETTER_WORKSPACE",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def workspace_dir(tmp_path: Path) -> Iterator[Path]:
    """A copy of the sample workspace (config, templates, seeds, subscribers) in tmp_path."""
    root = tmp_path / "ws"
    root.mkdir()
    # without the sample [[recurring]] series: a test that lets run-due run at a
    # Thursday afternoon would otherwise compose it; series tests configure their own
    sample = (REPO / "newsletter.toml").read_text(encoding="utf-8")
    (root / "newsletter.toml").write_text(sample.split("\n[[recurring]]")[0], encoding="utf-8")
    for folder in ("templates", "seeds", "subscribers"):
        if (REPO / folder).exists():
            shutil.copytree(
                REPO / folder,
                root / folder,
                ignore=shutil.ignore_patterns("*.db", "*.db-*", ".secret_key"),
            )
    (root / "issues").mkdir(exist_ok=True)
    yield root


@pytest.fixture
def workspace(workspace_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """The loaded throwaway workspace, with a fixed signing key."""
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-key-not-secret")
    return load_workspace(workspace_dir)


@pytest.fixture
def ws(workspace: Workspace) -> Workspace:
    """The sample workspace with its five subscribers imported onto list main."""
    from newsletter.audience.importing import import_file
    from newsletter.store import open_store_for

    with open_store_for(workspace) as store:
        import_file(
            store,
            workspace.root / "subscribers" / "subscribers.csv",
            list_name=None,
            default_list="main",
        )
    return workspace


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (never a downloaded browser build)."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _as_server_user(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


def _run_quietly(args: list[str], *, check: bool = True) -> None:
    # no pipes: the server started by pg_ctl would hold them open and run() would never return
    subprocess.run(
        _as_server_user(args), check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A running throwaway PostgreSQL, reached over its Unix socket only -> a URL with a
    ``{db}`` placeholder. Skips where psycopg or the server binaries are missing."""
    pytest.importorskip("psycopg")
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb) are not installed")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser")
    folder = Path(tempfile.mkdtemp(prefix="nl-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, user="postgres")
    with socket.socket() as probe:  # a free number to name the socket file after
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = folder / "data"
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    _run_quietly([*initdb, "--no-sync", "-E", "UTF8"])
    options = f"-c listen_addresses='' -c unix_socket_directories={folder} -p {port} -c fsync=off"
    pg_ctl = str(bin_dir / "pg_ctl")
    _run_quietly(
        [pg_ctl, "-D", str(data), "-l", str(folder / "server.log"), "-o", options, "-w", "start"]
    )
    try:
        yield f"postgresql+psycopg://postgres@/{{db}}?host={folder}&port={port}"
    finally:
        _run_quietly([pg_ctl, "-D", str(data), "-m", "immediate", "stop"], check=False)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on the throwaway server for each test."""
    name = "t_" + request.node.name.lower().replace("[", "_").replace("]", "")[:50]
    admin = create_engine(pg_server.format(db="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return pg_server.format(db=name)
