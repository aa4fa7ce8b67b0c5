"""The preview page in a real Chromium (Debian's, through Playwright).

Loads the page from the real server, checks the desktop (600 px) and phone (375 px)
frames render the issue, edits a teaser in issue.json and waits for the page to show
it without a manual reload (keeping the frame's scroll position), breaks the workspace
template and sees the error banner naming the file and line while the last good render
stays, then fixes it and sees the page recover.

Screenshots of the desktop, phone, side-by-side and dark views are kept as test
artifacts in tests/artifacts/ (ignored by git).
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from newsletter.preview import PreviewServer, open_preview
from newsletter.workspace import Workspace

playwright_sync = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect  # noqa: E402

TESTS = Path(__file__).resolve().parents[1]
FIXTURE_ISSUE = TESTS / "fixtures" / "preview_issue.json"
ARTIFACTS = TESTS / "artifacts"
PACKAGED_TEMPLATE = TESTS.parent / "src" / "newsletter" / "templates" / "issue.mjml.j2"
FIRST_TITLE = "A fishing harbour now heats the town behind it"

pytestmark = [
    pytest.mark.browser,
]


@pytest.fixture
def issue_dir(workspace: Workspace) -> Path:
    folder = workspace.issues_dir / "2026-03-03-tuesday-tide"
    folder.mkdir(parents=True)
    shutil.copy(FIXTURE_ISSUE, folder / "issue.json")
    return folder


@pytest.fixture
def template(workspace: Workspace) -> Path:
    """The theme's issue template, copied into the workspace so the test can break it."""
    workspace.templates_dir.mkdir(exist_ok=True)
    target = workspace.templates_dir / "issue.mjml.j2"
    shutil.copy(PACKAGED_TEMPLATE, target)
    return target


@pytest.fixture
def server(workspace: Workspace, issue_dir: Path, template: Path) -> Iterator[PreviewServer]:
    state = open_preview(workspace, issue_dir)
    preview = PreviewServer(state, port=0)
    preview.start_in_thread()
    yield preview
    preview.stop()
    state.close()


@pytest.fixture
def page(browser: Browser, server: PreviewServer) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1480, "height": 1000})
    tab = context.new_page()
    tab.goto(server.url)
    yield tab
    context.close()


def rename_first_teaser(folder: Path, title: str) -> None:
    data = json.loads((folder / "issue.json").read_text(encoding="utf-8"))
    data["teasers"][0]["title"] = title
    (folder / "issue.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def frame_scroll_y(page: Page, frame_id: str) -> float:
    return float(page.evaluate(f"document.getElementById('{frame_id}').contentWindow.scrollY"))


def test_both_widths_render_and_views_switch(page: Page) -> None:
    desktop, phone = page.locator("#frame-desktop"), page.locator("#frame-phone")
    expect(desktop).to_have_attribute("data-loaded-version", "1")
    expect(phone).to_have_attribute("data-loaded-version", "1")

    assert desktop.bounding_box()["width"] == 600  # type: ignore[index]
    assert phone.bounding_box()["width"] == 375  # type: ignore[index]
    for frame_id, width in (("frame-desktop", 600), ("frame-phone", 375)):
        inner = page.frame_locator(f"#{frame_id}")
        expect(inner.get_by_text(FIRST_TITLE)).to_be_visible()
        layout_width = page.evaluate(
            f"document.getElementById('{frame_id}').contentDocument.documentElement.clientWidth"
        )
        assert layout_width == width

    expect(page.locator("#inbox-subject")).to_have_text("The Tuesday Tide — 3 March 2026")
    expect(page.locator("#inbox-sender-name")).to_have_text("The Weekly Brief")
    expect(page.locator("#inbox-preheader")).to_contain_text("A harbour that heats a town")
    expect(page.locator("#inbox-to")).to_contain_text("Alex Example <alex@example.org>")
    expect(page.locator("#size-text")).to_contain_text("KB")
    expect(page.locator("#links-list li").first).to_be_visible()
    expect(page.locator("#recipients-text")).to_contain_text("main")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "preview-side-by-side.png", full_page=True)
    page.get_by_role("button", name="Desktop").click()
    expect(phone).to_be_hidden()
    page.screenshot(path=ARTIFACTS / "preview-desktop.png", full_page=True)
    page.get_by_role("button", name="Phone").click()
    expect(desktop).to_be_hidden()
    expect(phone).to_be_visible()
    page.screenshot(path=ARTIFACTS / "preview-phone.png", full_page=True)

    page.get_by_label("Dark mode").check()
    expect(phone).to_have_attribute("src", "/frame?v=1&dark=1")
    expect(
        page.frame_locator("#frame-phone").locator("style[data-preview=dark-mode]")
    ).to_have_count(1)
    page.screenshot(path=ARTIFACTS / "preview-phone-dark.png", full_page=True)

    page.get_by_role("button", name="Plain text").click()
    expect(page.locator("#text-part")).to_contain_text(FIRST_TITLE)
    expect(phone).to_be_hidden()


def test_edit_break_and_fix_update_the_open_page(
    page: Page, issue_dir: Path, template: Path
) -> None:
    desktop = page.locator("#frame-desktop")
    expect(desktop).to_have_attribute("data-loaded-version", "1")
    page.evaluate("document.getElementById('frame-desktop').contentWindow.scrollTo(0, 400)")
    assert frame_scroll_y(page, "frame-desktop") == 400

    # 1. a saved teaser edit appears without a manual reload, scroll position kept
    page.evaluate("window.notReloaded = true")
    rename_first_teaser(issue_dir, "Harbour heat now warms the school too")
    expect(
        page.frame_locator("#frame-desktop").get_by_text("Harbour heat now warms the school too")
    ).to_have_count(1)
    expect(
        page.frame_locator("#frame-phone").get_by_text("Harbour heat now warms the school too")
    ).to_have_count(1)
    expect(desktop).not_to_have_attribute("data-loaded-version", "1")
    assert frame_scroll_y(page, "frame-desktop") == 400
    assert page.evaluate("window.notReloaded") is True

    # 2. a broken template: the banner names file and line, the last good render stays
    good_template = template.read_text(encoding="utf-8")
    lines = good_template.splitlines(keepends=True)
    template.write_text("".join([*lines[:29], "{% if %}\n", *lines[29:]]), encoding="utf-8")
    banner = page.locator("#error-banner")
    expect(banner).to_be_visible()
    expect(page.locator("#error-text")).to_contain_text("templates/issue.mjml.j2")
    expect(page.locator("#error-text")).to_contain_text("line 30")
    shown = desktop.get_attribute("data-loaded-version")
    expect(
        page.frame_locator("#frame-desktop").get_by_text("Harbour heat now warms the school too")
    ).to_have_count(1)

    # 3. fixing it recovers by itself
    template.write_text(good_template, encoding="utf-8")
    expect(banner).to_be_hidden()
    expect(desktop).not_to_have_attribute("data-loaded-version", shown or "")
    expect(
        page.frame_locator("#frame-desktop").get_by_text("Harbour heat now warms the school too")
    ).to_have_count(1)
    assert page.evaluate("window.notReloaded") is True


class _LinkTarget(BaseHTTPRequestHandler):
    """Answers 200 to anything: the one reachable page of the link check."""

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_check_links_marks_the_unreachable_ones(
    page: Page, issue_dir: Path, workspace: Workspace
) -> None:
    target = ThreadingHTTPServer(("127.0.0.1", 0), _LinkTarget)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    gone = socket.socket()
    gone.bind(("127.0.0.1", 0))
    dead_url = f"http://127.0.0.1:{gone.getsockname()[1]}/moved"
    gone.close()  # nothing listens there: connection refused
    live_url = f"http://127.0.0.1:{target.server_address[1]}/harbour"
    try:
        # every web link on loopback (the footer's website and the web version's link
        # come from newsletter.toml)
        config = workspace.root / "newsletter.toml"
        config.write_text(
            config.read_text(encoding="utf-8")
            .replace("https://www.example.org", live_url)
            .replace("https://brief.example.org", live_url.removesuffix("/harbour")),
            encoding="utf-8",
        )
        data = json.loads((issue_dir / "issue.json").read_text(encoding="utf-8"))
        data["teasers"][0]["url"] = live_url
        data["teasers"][1]["url"] = dead_url
        data["teasers"][2]["url"] = live_url
        (issue_dir / "issue.json").write_text(json.dumps(data), encoding="utf-8")
        links = page.locator("#links-list li")
        expect(links.filter(has_text=dead_url)).to_have_count(1)
        expect(links.filter(has_text="example.org/")).to_have_count(0)

        page.get_by_role("button", name="Check links").click()

        expect(links.filter(has_text=live_url).locator(".status")).to_have_text("200")
        expect(links.filter(has_text=dead_url).locator(".status")).to_have_text("unreachable")
        expect(page.locator("#check-links")).to_have_attribute("data-status", "bad")
        expect(page.locator("#links-summary")).to_contain_text("unreachable")
    finally:
        target.shutdown()
        target.server_close()
