"""Images an issue hosts itself: a local photo (or, with [images] rehost, a feed's remote
image) is copied into the issue's media/ without its metadata, at most 1200 px wide, as
JPEG or PNG under a content-hashed name; the mail points at {base_url}/media/<name> with
its real width, height and alt text, and `newsletter serve` answers that URL."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import lxml.html
import pytest
from PIL import Image, ImageDraw

from newsletter.compose.build import compose_issue
from newsletter.compose.folder import render_issue_folder
from newsletter.compose.images import MAX_WIDTH, prepare_image
from newsletter.compose.issue_file import read_issue
from newsletter.errors import RenderError, SourceError
from newsletter.media import media_files, media_index
from newsletter.render.pipeline import render_issue
from newsletter.store import open_store_for
from newsletter.web.server import ServeServer
from newsletter.workspace import Workspace, load_workspace
from photos import GPS_IFD, compose, photo_with_gps, story

ORIENTATION = 0x0112


def imgs(html: str) -> list[dict[str, str]]:
    return [dict(img.attrib) for img in lxml.html.document_fromstring(html).iter("img")]


# --- a local photo, end to end ----------------------------------------------------------------


def test_a_local_photo_is_hosted_without_gps_and_served(workspace: Workspace) -> None:
    photos = workspace.root / "seeds" / "photos"
    photos.mkdir()
    photo_with_gps(photos / "dawn.jpg")
    folder = compose(workspace, story(workspace.root / "seeds", "photos/dawn.jpg"))

    [media] = media_files(folder)
    data = media.read_bytes()
    assert media.name == hashlib.sha256(data).hexdigest()[:20] + ".jpg"
    with Image.open(io.BytesIO(data)) as hosted:
        assert hosted.format == "JPEG"
        assert hosted.size == (MAX_WIDTH, 800)
        assert not hosted.getexif()
        assert hosted.getexif().get_ifd(GPS_IFD) == {}
        assert "exif" not in hosted.info and "comment" not in hosted.info
        assert hosted.info.get("progressive") == 1

    teaser = json.loads((folder / "issue.json").read_text(encoding="utf-8"))["teasers"][0]
    url = f"{workspace.base_url}/media/{media.name}"
    assert (teaser["image"], teaser["image_width"], teaser["image_height"]) == (url, 1200, 800)
    assert teaser["image_original"] == "seeds/photos/dawn.jpg"
    html = (folder / ".send.html").read_text(encoding="utf-8")
    [img] = [img for img in imgs(html) if img["src"] == url]
    assert (img["width"], img["height"], img["alt"]) == ("600", "400", "Fishing boats at dawn")
    assert str(photos) not in html  # no path of the publisher's disk reaches a reader

    store = open_store_for(workspace)
    server = ServeServer(workspace, store=store, scheduler=False)
    server.start_in_thread()
    try:
        served = httpx.get(f"{server.url}/media/{media.name}")
        again = httpx.get(
            f"{server.url}/media/{media.name}", headers={"If-None-Match": served.headers["etag"]}
        )
        missing = httpx.get(f"{server.url}/media/{'0' * 20}.jpg")
        not_a_name = httpx.get(f"{server.url}/media/..%2Fissue.json")
    finally:
        server.stop()
        store.close()
    assert served.status_code == 200
    assert served.content == data
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert again.status_code == 304 and again.content == b""
    assert (missing.status_code, not_a_name.status_code) == (404, 404)
    with Image.open(io.BytesIO(served.content)) as fetched:
        assert fetched.width <= 1200 and fetched.getexif().get_ifd(GPS_IFD) == {}


def test_markdown_body_image_relative_to_the_workspace(workspace: Workspace) -> None:
    (workspace.root / "art").mkdir()
    Image.new("RGB", (300, 200), (30, 120, 200)).save(workspace.root / "art" / "flat.png")
    path = workspace.root / "seeds" / "flat.md"
    path.write_text(
        "# Blue skies over the valley\n\n![A plain blue sky](art/flat.png)\n\n"
        "The valley saw its first clear week since August, the weather service said.\n",
        encoding="utf-8",
    )
    folder = compose(workspace, path)
    [media] = media_files(folder)
    teaser = read_issue(folder).teasers[0]
    # one colour: a drawing, kept as PNG and never enlarged
    assert media.suffix == ".png"
    assert (teaser.image_width, teaser.image_height, teaser.image_alt) == (
        300,
        200,
        "A plain blue sky",
    )
    [img] = [img for img in imgs((folder / "issue.html").read_text()) if "/media/" in img["src"]]
    assert (img["width"], img["height"]) == ("300", "200")


# --- what Pillow makes of an image ------------------------------------------------------------


def test_transparency_stays_png_and_orientation_is_applied() -> None:
    logo = Image.new("RGBA", (1600, 400), (0, 0, 0, 0))
    ImageDraw.Draw(logo).rectangle((100, 100, 1500, 300), fill=(180, 30, 30, 255))
    out = io.BytesIO()
    logo.save(out, "PNG")
    prepared = prepare_image(out.getvalue(), "logo.png")
    assert prepared.name.endswith(".png")
    assert (prepared.width, prepared.height) == (1200, 300)
    with Image.open(io.BytesIO(prepared.data)) as hosted:
        assert hosted.mode == "RGBA" and hosted.getpixel((0, 0))[3] == 0

    # a phone photo stored sideways with "rotate 90" in its EXIF
    sideways = Image.effect_noise((800, 600), 50).convert("RGB")
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    out = io.BytesIO()
    sideways.save(out, "JPEG", exif=exif.tobytes())
    upright = prepare_image(out.getvalue(), "phone.jpg")
    assert (upright.width, upright.height) == (600, 800)
    with Image.open(io.BytesIO(upright.data)) as hosted:
        assert ORIENTATION not in hosted.getexif()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"GIF89a but not really", "not an image"),
        (b"plain text, no picture", "not an image"),
    ],
)
def test_what_is_not_an_image_is_refused(data: bytes, expected: str) -> None:
    with pytest.raises(SourceError, match=f"^story.md: image a.jpg: {expected}"):
        prepare_image(data, "story.md: image a.jpg")


def test_an_image_bomb_and_an_unsupported_format_are_refused() -> None:
    bomb = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(bomb, "PNG")  # 400 million pixels, a few KB
    with pytest.raises(SourceError, match="too many pixels"):
        prepare_image(bomb.getvalue(), "bomb.png")
    tiff = io.BytesIO()
    Image.new("RGB", (10, 10)).save(tiff, "TIFF")
    with pytest.raises(SourceError, match="a TIFF image is not supported"):
        prepare_image(tiff.getvalue(), "scan.tif")


# --- bad input, from the command line ---------------------------------------------------------


def run(workspace: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command line (its one error line, its exit code) in ``workspace``."""
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=workspace.root,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_missing_local_image_is_a_one_line_error_naming_it(workspace: Workspace) -> None:
    path = story(workspace.root / "seeds", "photos/nowhere.jpg")
    result = run(workspace, "compose", str(path))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert "image photos/nowhere.jpg: no such file" in first and str(path) in first
    assert list((workspace.root / "issues").iterdir()) == []  # nothing half-written


def test_an_edited_issue_json_naming_a_local_file_is_hosted_by_render(
    workspace: Workspace,
) -> None:
    photo_with_gps(workspace.root / "seeds" / "dawn.jpg", (1000, 500))
    folder = compose(workspace, story(workspace.root / "seeds", "dawn.jpg"))
    data = json.loads((folder / "issue.json").read_text(encoding="utf-8"))
    Image.new("RGB", (640, 480), (250, 200, 0)).save(folder / "sun.png")
    data["teasers"][0]["image"] = "sun.png"
    (folder / "issue.json").write_text(json.dumps(data, indent=2), encoding="utf-8")

    with pytest.raises(RenderError, match="run newsletter render FOLDER"):
        render_issue(workspace, read_issue(folder))  # a send never ships a local path
    render_issue_folder(workspace, folder)
    teaser = read_issue(folder).teasers[0]
    assert teaser.image_original == (folder / "sun.png").relative_to(workspace.root).as_posix()
    assert re.fullmatch(re.escape(workspace.base_url) + r"/media/[0-9a-f]{20}\.png", teaser.image)
    assert len(media_files(folder)) == 2  # the composed photo stays too
    assert teaser.image.rsplit("/", 1)[1] in media_index(workspace.issues_dir)

    data["teasers"][0]["image"] = "gone.png"
    (folder / "issue.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    result = run(workspace, "render", str(folder))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "teasers[0]: image gone.png: no such file" in result.stderr.splitlines()[0]


# --- [images] rehost ----------------------------------------------------------------------


class ImageServer:
    """A loopback HTTP server with an image, a too-large file and a 404."""

    def __init__(self, image: bytes, huge: int) -> None:
        served = {"/boat.jpg": image, "/huge.jpg": b"\xff" * huge}
        self.requests: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(handler) -> None:
                self.requests.append(handler.path)
                body = served.get(handler.path)
                handler.send_response(200 if body is not None else 404)
                handler.send_header("Content-Type", "image/jpeg")
                handler.send_header("Content-Length", str(len(body or b"")))
                handler.end_headers()
                handler.wfile.write(body or b"")

            def log_message(handler, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def image_server(tmp_path: Path) -> Iterator[ImageServer]:
    photo = photo_with_gps(tmp_path / "boat.jpg", (2400, 1600))
    server = ImageServer(photo.read_bytes(), huge=11 * 1024 * 1024)
    yield server
    server.close()


def feed(folder: Path, server: ImageServer) -> Path:
    items = "".join(
        f"<item><title>{title}</title><link>https://news.example.org/{path}</link>"
        f"<guid>{path}</guid><description>{title}: the crews and the council met on Monday "
        "and agreed the plan, which starts next spring across the whole region.</description>"
        f'<media:content url="{server.url}/{path}.jpg" medium="image"/></item>'
        for title, path in (("Boats return", "boat"), ("Huge picture", "huge"), ("Gone", "gone"))
    )
    path = folder / "wire.xml"
    path.write_text(
        '<?xml version="1.0"?><rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/">'
        f"<channel><title>Wire</title><link>https://news.example.org/</link>{items}"
        "</channel></rss>",
        encoding="utf-8",
    )
    return path


def with_rehost(workspace: Workspace, on: bool) -> Workspace:
    config = workspace.root / "newsletter.toml"
    text = config.read_text(encoding="utf-8").replace("\n[images]\nrehost = true\n", "")
    config.write_text(text + f"\n[images]\nrehost = {'true' if on else 'false'}\n")
    return load_workspace(workspace.root)


def test_rehost_fetches_feed_images_once_and_hosts_them(
    workspace: Workspace, image_server: ImageServer
) -> None:
    ws = with_rehost(workspace, True)
    result = compose_issue(
        ws,
        [str(feed(ws.root, image_server))],
        subject="Rehosted",
        intro="",
        preheader="",
        out=None,
        skip_bad=False,
    )
    boat, huge, gone = result.issue.teasers
    assert re.fullmatch(re.escape(ws.base_url) + r"/media/[0-9a-f]{20}\.jpg", boat.image)
    assert (boat.image_width, boat.image_height) == (1200, 800)
    assert boat.image_original == f"{image_server.url}/boat.jpg"
    # too large (the URL sources' 10 MB cap) or gone: left out, with a warning naming it
    assert (huge.image, huge.image_alt, gone.image) == ("", "", "")
    assert any("huge.jpg" in w and "larger than 10 MB" in w for w in result.warnings)
    assert any("gone.jpg" in w and "404" in w for w in result.warnings)
    assert image_server.requests.count("/boat.jpg") == 1
    html = (result.folder / ".send.html").read_text(encoding="utf-8")
    assert image_server.url not in html  # a reader's mail app asks only the publisher
    [media] = media_files(result.folder)
    with Image.open(media) as hosted:
        assert hosted.getexif().get_ifd(GPS_IFD) == {}


def test_without_rehost_remote_images_stay_remote(
    workspace: Workspace, image_server: ImageServer
) -> None:
    ws = with_rehost(workspace, False)
    result = compose_issue(
        ws,
        [str(feed(ws.root, image_server))],
        subject="Remote",
        intro="",
        preheader="",
        out=None,
        skip_bad=False,
    )
    assert result.issue.teasers[0].image == f"{image_server.url}/boat.jpg"
    assert image_server.requests == []
    assert media_files(result.folder) == []
