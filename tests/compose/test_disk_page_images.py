"""Images that an HTML page or a feed read from disk names by a relative path: hosted like
Markdown images when the file stays inside the workspace; a path leading out (``..``, an
absolute path, a symlink) is never read and the image is left out with a warning naming
the article; pages and feeds fetched over http(s) resolve such paths against their URL
as before, never against the disk."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from PIL import Image

from http_servers import serving
from newsletter.compose.build import compose_issue
from newsletter.compose.ingest import read_source
from newsletter.media import media_files
from newsletter.workspace import Workspace

TEXT = (
    "<p>The lock at Hatton Bridge reopened to boats on Friday after three months of repairs "
    "to its gates, the waterways trust said, ending a detour of forty kilometres.</p>"
    "<p>Engineers replaced both timber gates and rebuilt a section of the chamber wall.</p>"
)


def page(image: str, *, canonical: str = "") -> str:
    """A saved article page whose lead picture (og:image and the figure) is ``image``."""
    link = f'<link rel="canonical" href="{canonical}">' if canonical else ""
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f'<meta property="og:image" content="{image}">{link}'
        "<title>Canal lock reopens after repairs</title></head><body><article>"
        "<h1>Canal lock reopens after repairs</h1>"
        f'<figure><img src="{image}" alt="The lock gates open at dawn"></figure>'
        f"{TEXT}</article></body></html>"
    )


def feed(*entries: tuple[str, str]) -> str:
    """An RSS feed: one entry per (title, image markup) pair."""
    items = "".join(
        f"<item><title>{title}</title><link>https://canal.example.org/{number}</link>"
        f"<guid>canal-{number}</guid><description><![CDATA[{TEXT}]]></description>{image}</item>"
        for number, (title, image) in enumerate(entries)
    )
    return (
        '<?xml version="1.0"?><rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/">'
        f"<channel><title>Canal news</title><link>https://canal.example.org/</link>{items}"
        "</channel></rss>"
    )


def picture(path: Path, colour: tuple[int, int, int] = (40, 120, 180)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (900, 600), colour).save(path, "JPEG")
    return path


def compose(ws: Workspace, *sources: Path) -> dict[str, object]:
    """Compose ``sources`` -> issue.json as a dict, with ``media`` the hosted file names."""
    result = compose_issue(
        ws,
        [str(source) for source in sources],
        subject="Canals",
        intro="",
        preheader="",
        out=None,
        skip_bad=False,
        allow_repeats=True,
    )
    issue: dict[str, object] = json.loads((result.folder / "issue.json").read_text("utf-8"))
    issue["media"] = sorted(path.name for path in media_files(result.folder))
    issue["warnings"] = result.warnings
    return issue


def teasers(issue: dict[str, object]) -> list[dict[str, object]]:
    found = issue["teasers"]
    assert isinstance(found, list)
    return found


# --- inside the workspace: hosted -------------------------------------------------------------


def test_a_saved_page_and_a_feed_on_disk_name_pictures_beside_them(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    seeds = workspace.root / "seeds" / "canal"
    picture(seeds / "pictures" / "lock.jpg")
    picture(seeds / "pictures" / "barge.jpg", (180, 90, 40))
    picture(seeds / "pictures" / "towpath.jpg", (60, 160, 60))
    saved = seeds / "lock.html"
    saved.write_text(
        page("pictures/lock.jpg", canonical="https://canal.example.org/lock"), encoding="utf-8"
    )
    wire = seeds / "wire.xml"
    wire.write_text(
        feed(
            ("Barges return", '<media:content url="pictures/barge.jpg" medium="image"/>'),
            ("Towpath reopens", '<enclosure url="pictures/towpath.jpg" type="image/jpeg"/>'),
        ),
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING):
        issue = compose(workspace, saved, wire)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    shown = {
        teaser["title"]: (teaser["image_original"], teaser["image_width"], teaser["image_alt"])
        for teaser in teasers(issue)
    }
    assert shown == {
        "Canal lock reopens after repairs": (
            "seeds/canal/pictures/lock.jpg",
            900,
            "The lock gates open at dawn",
        ),
        "Barges return": ("seeds/canal/pictures/barge.jpg", 900, "Barges return"),
        "Towpath reopens": ("seeds/canal/pictures/towpath.jpg", 900, "Towpath reopens"),
    }
    media = issue["media"]
    assert isinstance(media, list) and len(media) == 3
    for teaser in teasers(issue):
        assert str(teaser["image"]).startswith(f"{workspace.base_url}/media/")
        assert str(teaser["image"]).rsplit("/", 1)[1] in media
        assert teaser["image_height"] == 600


# --- leading out of the workspace: never read ---------------------------------------------


def refused(
    ws: Workspace, source: Path, caplog: pytest.LogCaptureFixture, title: str
) -> dict[str, object]:
    """Compose ``source``; its one teaser has no image, no file was hosted and one warning
    names the article ``title``."""
    with caplog.at_level(logging.WARNING):
        issue = compose(ws, source)
    [teaser] = teasers(issue)
    assert (teaser["image"], teaser["image_alt"], issue["media"]) == ("", "", [])
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and f"{source}: {title!r}" in warnings[0], warnings
    return issue


def test_a_dotdot_path_out_of_the_workspace_is_left_out(
    workspace: Workspace, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    picture(tmp_path / "private" / "passport.jpg")
    saved = workspace.root / "seeds" / "lock.html"
    saved.write_text(page("../../private/passport.jpg"), encoding="utf-8")
    refused(workspace, saved, caplog, "Canal lock reopens after repairs")
    assert "leads outside the workspace" in caplog.text


def test_a_dotdot_path_that_stays_inside_is_hosted(workspace: Workspace) -> None:
    picture(workspace.root / "art" / "lock.jpg")
    saved = workspace.root / "seeds" / "lock.html"
    saved.write_text(page("../art/lock.jpg"), encoding="utf-8")
    [teaser] = teasers(compose(workspace, saved))
    assert teaser["image_original"] == "art/lock.jpg"


def test_an_absolute_path_is_never_read_even_inside_the_workspace(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    inside = picture(workspace.root / "seeds" / "pictures" / "lock.jpg")
    saved = workspace.root / "seeds" / "lock.html"
    saved.write_text(page(str(inside)), encoding="utf-8")
    refused(workspace, saved, caplog, "Canal lock reopens after repairs")
    assert "is an absolute path" in caplog.text


def test_an_absolute_path_on_a_page_with_an_address_is_a_path_on_its_site(
    workspace: Workspace,
) -> None:
    """A saved page's "/static/x.jpg" is on the site it came from, as a browser reads it."""
    inside = picture(workspace.root / "seeds" / "lock.jpg")
    saved = workspace.root / "seeds" / "lock.html"
    saved.write_text(page(str(inside), canonical="https://canal.example.org/lock"), "utf-8")
    [article] = read_source(str(saved), root=workspace.root)
    assert article.image == f"https://canal.example.org{inside.as_posix()}"


def test_a_symlink_out_of_the_workspace_is_left_out(
    workspace: Workspace, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    private = picture(tmp_path / "private" / "passport.jpg")
    pictures = workspace.root / "seeds" / "pictures"
    pictures.mkdir(parents=True)
    (pictures / "lock.jpg").symlink_to(private)
    (workspace.root / "seeds" / "album").symlink_to(private.parent, target_is_directory=True)
    wire = workspace.root / "seeds" / "wire.xml"
    for ref in ("pictures/lock.jpg", "album/passport.jpg"):
        wire.write_text(
            feed(("Barges return", f'<media:content url="{ref}" medium="image"/>')), "utf-8"
        )
        caplog.clear()
        refused(workspace, wire, caplog, "Barges return")
        assert f"image {ref} leads outside the workspace" in caplog.text


def test_a_symlink_that_stays_inside_is_hosted(workspace: Workspace) -> None:
    real = picture(workspace.root / "art" / "lock.jpg")
    (workspace.root / "seeds" / "lock.jpg").symlink_to(real)
    saved = workspace.root / "seeds" / "lock.html"
    saved.write_text(page("lock.jpg"), encoding="utf-8")
    [teaser] = teasers(compose(workspace, saved))
    assert str(teaser["image"]).startswith(f"{workspace.base_url}/media/")


def test_a_page_outside_the_workspace_cannot_name_its_neighbour(
    workspace: Workspace, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The rule is the workspace, not the page's folder: a page saved elsewhere on the
    disk (compose /downloads/page.html) cannot pull in the files beside it."""
    picture(tmp_path / "downloads" / "lock.jpg")
    saved = tmp_path / "downloads" / "lock.html"
    saved.write_text(page("lock.jpg"), encoding="utf-8")
    refused(workspace, saved, caplog, "Canal lock reopens after repairs")


def test_a_relative_path_with_no_file_keeps_resolving_against_the_page(
    workspace: Workspace,
) -> None:
    saved = workspace.root / "seeds" / "lock.html"
    saved.write_text(
        page("pictures/lock.jpg", canonical="https://canal.example.org/news/lock"), "utf-8"
    )
    [article] = read_source(str(saved), root=workspace.root)
    assert article.image == "https://canal.example.org/news/pictures/lock.jpg"
    # without a workspace to confine them, no file on disk is ever named
    picture(workspace.root / "seeds" / "pictures" / "lock.jpg")
    [article] = read_source(str(saved))
    assert article.image == "https://canal.example.org/news/pictures/lock.jpg"


# --- fetched pages and feeds: their URL, never the disk -----------------------------------------


@pytest.fixture
def site() -> Iterator[str]:
    """A loopback server with a page and a feed that name pictures by relative paths."""
    routes = {
        "/news/lock": ("text/html; charset=utf-8", page("pictures/lock.jpg")),
        "/news/feed.xml": (
            "application/rss+xml",
            feed(("Barges return", '<media:content url="pictures/barge.jpg" medium="image"/>')),
        ),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            content_type, text = routes.get(self.path, ("text/plain", "not here"))
            body = text.encode("utf-8")
            self.send_response(200 if self.path in routes else 404)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url


def test_a_fetched_page_and_feed_resolve_relative_pictures_against_their_url(
    workspace: Workspace, site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the same relative paths exist on disk, where the compose runs: they must not be used
    picture(workspace.root / "pictures" / "lock.jpg")
    picture(workspace.root / "pictures" / "barge.jpg")
    monkeypatch.chdir(workspace.root)
    [lock] = read_source(f"{site}/news/lock", root=workspace.root)
    assert lock.image == f"{site}/news/pictures/lock.jpg"
    # a feed entry's picture resolves against the entry's own link, as it always did
    [barge] = read_source(f"{site}/news/feed.xml", root=workspace.root)
    assert barge.image == "https://canal.example.org/pictures/barge.jpg"
