"""Shared fixtures: a throwaway workspace copied from the sample one."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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
        "NEWSLETTER_WORKSPACE",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def workspace_dir(tmp_path: Path) -> Iterator[Path]:
    """A copy of the sample workspace (config, templates, seeds, subscribers) in tmp_path."""
    root = tmp_path / "ws"
    root.mkdir()
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
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
