"""Make an image fit to host in a mail: Pillow decodes it, and only its pixels go on.

What comes out of ``prepare_image``:

- the orientation its EXIF asked for applied to the pixels (so nothing is lost when the
  metadata goes), colours converted to sRGB when it carries an ICC profile;
- no metadata at all: the image is rebuilt from its pixels, so EXIF (GPS above all),
  XMP, IPTC, comments and profiles stay behind;
- at most ``MAX_WIDTH`` px wide (twice the 600 px layout, for sharp high-density
  screens), never enlarged;
- PNG when it has transparency or few colours (logos, charts, drawings), else a
  progressive JPEG at quality ``JPEG_QUALITY`` (photos): the two formats every mail
  client shows;
- named after the sha256 of those bytes, so the same picture is one file and a changed
  one a new name (which lets every cache keep it for a year).

Refused with a ``SourceError`` naming ``where``: not an image, an image bomb (more
pixels than Pillow's ``MAX_IMAGE_PIXELS``), a format other than JPEG, PNG, GIF or WebP.

In: the image's bytes and where they came from (for errors). Out: ``PreparedImage``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from newsletter.errors import SourceError

log = logging.getLogger(__name__)

MAX_WIDTH = 1200
JPEG_QUALITY = 82
# a picture with at most this many colours is a drawing: PNG keeps it sharp and small
FEW_COLOURS = 256
HASH_DIGITS = 20
READABLE = {"JPEG", "MPO", "PNG", "GIF", "WEBP"}


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to host: its file ``name`` (``<hash>.jpg|png``), ``data``, and its
    ``width`` and ``height`` in pixels."""

    name: str
    data: bytes
    width: int
    height: int


def prepare_image(data: bytes, where: str) -> PreparedImage:
    """``data`` (an image file's bytes) -> PreparedImage (see the module docstring).

    ``where`` names the image in errors, e.g. "seeds/story.md: image photos/a.jpg".
    """
    image = _decode(data, where)
    image = _in_srgb(ImageOps.exif_transpose(image) or image)
    if image.width > MAX_WIDTH:
        height = max(1, round(image.height * MAX_WIDTH / image.width))
        image = image.resize((MAX_WIDTH, height), Image.Resampling.LANCZOS)
    # a new image from the pixels alone: no EXIF, XMP, IPTC, comment or profile rides along
    clean = Image.frombytes(image.mode, image.size, image.tobytes())
    encoded, extension = _encode(clean)
    name = f"{hashlib.sha256(encoded).hexdigest()[:HASH_DIGITS]}.{extension}"
    log.debug("%s: %dx%d -> %s (%d bytes)", where, clean.width, clean.height, name, len(encoded))
    return PreparedImage(name=name, data=encoded, width=clean.width, height=clean.height)


def _decode(data: bytes, where: str) -> Image.Image:
    """The first frame of the image in ``data``, fully decoded; SourceError when it is none."""
    try:
        with warnings.catch_warnings():
            # past MAX_IMAGE_PIXELS Pillow only warns; a picture that big is a bomb here too
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image_format = image.format or "?"
            if image_format not in READABLE:
                raise SourceError(
                    f"{where}: a {image_format} image is not supported",
                    hint="save it as JPEG or PNG",
                )
            image.seek(0)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise SourceError(
            f"{where}: the image has too many pixels (more than {Image.MAX_IMAGE_PIXELS:,})",
            hint="scale it down, or check that it is the picture you meant",
        ) from None
    except UnidentifiedImageError:
        raise SourceError(
            f"{where}: not an image", hint="name a JPEG, PNG, GIF or WebP file"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise SourceError(
            f"{where}: the image cannot be read ({exc})",
            hint="open and save it again, or replace it",
        ) from None
    return image


def _in_srgb(image: Image.Image) -> Image.Image:
    """``image`` as RGB or RGBA (or L / LA), converted to sRGB when it carries a profile."""
    profile = image.info.get("icc_profile")
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    target = "RGBA" if has_alpha else "RGB"
    if image.mode in ("L", "LA") and not profile:
        target = "LA" if has_alpha else "L"
    if profile and image.mode in ("RGB", "RGBA", "CMYK"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            converted = ImageCms.profileToProfile(
                image, source, ImageCms.createProfile("sRGB"), outputMode=target
            )
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            log.debug("colour profile not usable; converting without it")
    return image if image.mode == target else image.convert(target)


def _encode(image: Image.Image) -> tuple[bytes, str]:
    """The bytes to host and their extension: PNG for transparency or few colours, else JPEG."""
    if image.mode in ("RGBA", "LA") and image.getchannel("A").getextrema()[0] == 255:
        image = image.convert("RGB" if image.mode == "RGBA" else "L")  # an alpha nobody uses
    out = io.BytesIO()
    if image.mode in ("RGBA", "LA"):
        image.save(out, format="PNG", optimize=True)
        return out.getvalue(), "png"
    if image.getcolors(maxcolors=FEW_COLOURS) is not None:
        palette = image if image.mode == "L" else image.quantize(colors=FEW_COLOURS)
        palette.save(out, format="PNG", optimize=True)
        return out.getvalue(), "png"
    image.save(out, format="JPEG", quality=JPEG_QUALITY, progressive=True, optimize=True)
    return out.getvalue(), "jpg"
