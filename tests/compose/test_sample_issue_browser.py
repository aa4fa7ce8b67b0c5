"""The sample issue (README command 1's compose of seeds/) in a real Chromium, with its
pictures loaded from a running ``newsletter serve``: every teaser of the sample but the
plain-text scrape shows its own hosted picture at its width and height.

The screenshot goes to tests/artifacts/sample-issue.png (ignored by git); the README
shows a copy, docs/sample-issue.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter.compose.build import compose_issue
from newsletter.store import open_store_for
from newsletter.web.server import ServeServer
from newsletter.workspace import Workspace, load_workspace

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

pytestmark = [pytest.mark.browser]


@pytest.fixture
def served(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """The sample workspace with ``newsletter serve`` on loopback as its base URL."""
    with open_store_for(workspace) as store:
        server = ServeServer(workspace, store=store, scheduler=False)
        server.start_in_thread()
        try:
            monkeypatch.setenv("NEWSLETTER_BASE_URL", server.url)
            yield load_workspace(workspace.root)
        finally:
            server.stop()


def test_the_sample_issue_shows_every_picture_from_serve(served: Workspace, browser: Any) -> None:
    result = compose_issue(
        served,
        [str(served.root / "seeds")],
        subject="The Weekly Brief",
        intro="",
        preheader="",
        out=None,
        skip_bad=False,
    )
    assert result.warnings == []
    page = browser.new_page(viewport={"width": 700, "height": 2600})
    try:
        page.goto((result.folder / "issue.html").as_uri())
        page.wait_for_load_state("load")
        pictures = page.eval_on_selector_all(
            f"img[src^='{served.base_url}/media/']",
            "imgs => imgs.map(img => [img.complete, img.naturalWidth, img.naturalHeight,"
            " img.getAttribute('width'), img.getAttribute('height'), img.alt])",
        )
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "sample-issue.png"))
    finally:
        page.close()
    assert len(pictures) == len(list((served.root / "seeds" / "images").glob("*.jpg")))
    for complete, natural_width, natural_height, width, height, alt in pictures:
        assert complete and (natural_width, natural_height) == (1200, 675)
        # the picture's own proportions at its display width, so the layout holds unloaded
        assert int(height) == round(int(width) * 675 / 1200)
        assert alt
