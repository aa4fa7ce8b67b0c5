"""Pictures for tests, drawn with Pillow: a camera photo carrying GPS EXIF, a Markdown
story whose front matter names it, and composing such stories into an issue folder."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from newsletter.compose.build import compose_issue
from newsletter.workspace import Workspace

GPS_IFD = 0x8825


def photo_with_gps(path: Path, size: tuple[int, int] = (3000, 2000)) -> Path:
    """A noisy (photo-like) JPEG of ``size`` with a GPS position and a camera comment."""
    image = Image.effect_noise(size, 60).convert("RGB")
    ImageDraw.Draw(image).ellipse((400, 300, 1800, 1500), fill=(200, 90, 40))
    exif = Image.Exif()
    exif[0x010F] = "Example Camera Maker"
    exif[0x9286] = "holiday at home"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)})
    image.save(path, "JPEG", exif=exif.tobytes(), quality=90, comment=b"private note")
    return path


def story(folder: Path, image: str, name: str = "harbour.md") -> Path:
    """A Markdown article ``folder/name`` whose front matter names ``image`` -> its path."""
    path = folder / name
    path.write_text(
        "---\ntitle: The harbour wakes up\nurl: https://news.example.org/harbour\n"
        f"image: {image}\nimage_alt: Fishing boats at dawn\n---\n\n"
        "The harbour opened its new quay on Monday, and the first boats tied up before dawn. "
        "Fishers said the deeper berths let them land catches at any tide.\n",
        encoding="utf-8",
    )
    return path


def compose(ws: Workspace, *sources: Path, subject: str = "Images") -> Path:
    """``newsletter compose SOURCES`` under ``subject`` -> the new issue folder."""
    result = compose_issue(
        ws,
        [str(source) for source in sources],
        subject=subject,
        intro="",
        preheader="",
        out=None,
        skip_bad=False,
        allow_repeats=True,
    )
    return result.folder
