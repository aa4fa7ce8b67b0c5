"""The archive in a real Chromium, at phone (375 px) and desktop (1200 px) width: the
index and one issue's web version render readably without sideways scrolling.

Screenshots go to tests/artifacts/ (ignored by git).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from archive_setup import History, make_history

from newsletter.store import open_store_for
from newsletter.web.server import ServeServer
from newsletter.workspace import Workspace

playwright_sync = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, ViewportSize  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
WIDTHS: dict[str, ViewportSize] = {
    "phone": {"width": 375, "height": 740},
    "desktop": {"width": 1200, "height": 900},
}

pytestmark = [pytest.mark.browser]


@pytest.fixture
def server(workspace: Workspace) -> Iterator[tuple[ServeServer, History]]:
    history = make_history(workspace)
    with open_store_for(workspace) as store:
        serving = ServeServer(workspace, store=store, scheduler=False)
        serving.start_in_thread()
        try:
            yield serving, history
        finally:
            serving.stop()


@pytest.mark.parametrize("size", sorted(WIDTHS))
def test_the_archive_reads_well_on_a_phone_and_a_desktop(
    browser: Browser, server: tuple[ServeServer, History], size: str
) -> None:
    serving, _ = server
    mobile = size == "phone"
    context = browser.new_context(viewport=WIDTHS[size], is_mobile=mobile, has_touch=mobile)
    page = context.new_page()
    try:
        ARTIFACTS.mkdir(exist_ok=True)
        page.goto(f"{serving.url}/archive/")
        assert page.locator("h1").inner_text() == "Past issues"
        link = page.locator("a.title")
        assert link.count() == 1 and link.inner_text() == "Harbour news & <more>"
        page.screenshot(path=str(ARTIFACTS / f"archive-index-{size}.png"), full_page=True)
        _no_sideways_scroll(page, "index")

        # the link is absolute (the base URL); follow the same path on this server
        page.goto(f"{serving.url}/archive/2026-12-01-harbour/")
        assert page.title() == "Harbour news & <more>"
        assert page.get_by_role("link", name="Subscribe", exact=True).count() == 1
        assert page.get_by_text("Hi reader,").count() == 1
        page.screenshot(path=str(ARTIFACTS / f"archive-issue-{size}.png"), full_page=True)
        _no_sideways_scroll(page, "issue")
    finally:
        context.close()


def _no_sideways_scroll(page: object, name: str) -> None:
    overflow = page.evaluate(  # type: ignore[attr-defined]
        "document.scrollingElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name}: {overflow} px wider than the window"
