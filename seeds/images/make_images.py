"""Draw the sample workspace's illustrations with Pillow: abstract pictures, 1200x675,
one per seed story. Run it again (``python seeds/images/make_images.py``) to make them
anew; the output is the same every time.

In: nothing. Out: the .jpg files beside this script.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SIZE = (1200, 675)
HERE = Path(__file__).resolve().parent
Colour = tuple[int, int, int]


def gradient(top: Colour, bottom: Colour) -> Image.Image:
    """A vertical gradient from ``top`` to ``bottom``."""
    width, height = SIZE
    image = Image.new("RGB", SIZE)
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / (height - 1)
        colour = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        draw.line([(0, y), (width, y)], fill=colour)
    return image


def grid_in_snow() -> Image.Image:
    """Pylons and lines over snowy hills at dusk (the Nordic power reserve)."""
    image = gradient((38, 52, 96), (236, 170, 140))
    draw = ImageDraw.Draw(image)
    draw.ellipse((820, 120, 960, 260), fill=(255, 224, 190))
    for offset, colour in ((420, (214, 224, 240)), (500, (236, 242, 250))):
        points = [(x, offset + 40 * math.sin(x / 170 + offset)) for x in range(0, 1201, 20)]
        draw.polygon([*points, (1200, 675), (0, 675)], fill=colour)
    pylons = [(150, 470), (470, 440), (790, 455), (1110, 430)]
    for x, base in pylons:
        top = base - 230
        draw.line([(x - 40, base), (x, top), (x + 40, base)], fill=(40, 44, 60), width=6)
        draw.line([(x - 55, top + 50), (x + 55, top + 50)], fill=(40, 44, 60), width=5)
    for (x1, b1), (x2, b2) in itertools.pairwise(pylons):
        for dx in (-55, 55):
            start, end = (x1 + dx, b1 - 180), (x2 + dx, b2 - 180)
            middle = ((start[0] + end[0]) / 2, max(start[1], end[1]) + 35)
            draw.line([start, middle, end], fill=(30, 32, 45), width=2, joint="curve")
    return image


def reef() -> Image.Image:
    """Coral shapes in blue water (the Ningaloo reef survey)."""
    rng = random.Random(7)
    image = gradient((18, 120, 170), (6, 40, 80))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = rng.randrange(0, 1200), rng.randrange(380, 700)
        r = rng.randrange(20, 70)
        colour = rng.choice([(250, 128, 114), (255, 183, 77), (240, 98, 146), (129, 199, 132)])
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    for _ in range(60):
        x, y = rng.randrange(0, 1200), rng.randrange(0, 380)
        draw.ellipse((x, y, x + 6, y + 6), outline=(200, 235, 255), width=2)
    return image.filter(ImageFilter.GaussianBlur(1.2))


def water_and_sun() -> Image.Image:
    """A bright sun over calm, striped water (the Lisbon desalination plant)."""
    image = gradient((250, 205, 120), (60, 140, 190))
    draw = ImageDraw.Draw(image)
    draw.ellipse((500, 90, 700, 290), fill=(255, 240, 200))
    for row in range(12):
        y = 380 + row * 26
        draw.rectangle((0, y, 1200, y + 12), fill=(40 + row * 6, 110 + row * 5, 170 + row * 3))
    return image


def ferry_in_ice() -> Image.Image:
    """A ferry's hull among ice floes (the Baltic battery ferry)."""
    rng = random.Random(11)
    image = gradient((160, 190, 215), (225, 235, 245))
    draw = ImageDraw.Draw(image)
    for _ in range(30):
        x, y = rng.randrange(-50, 1200), rng.randrange(420, 675)
        w, h = rng.randrange(60, 200), rng.randrange(15, 40)
        draw.polygon(
            [(x, y), (x + w, y + 5), (x + w - 20, y + h), (x + 10, y + h)], fill=(250, 252, 255)
        )
    draw.polygon([(300, 400), (900, 400), (850, 470), (350, 470)], fill=(180, 40, 40))
    draw.rectangle((450, 330, 750, 400), fill=(245, 245, 240))
    draw.rectangle((560, 280, 620, 330), fill=(60, 160, 90))
    return image


def amphorae() -> Image.Image:
    """Amphora shapes on a sandy sea floor (the shipwreck off Crete)."""
    image = gradient((20, 90, 130), (200, 180, 130))
    draw = ImageDraw.Draw(image)
    for index, x in enumerate(range(180, 1100, 180)):
        y = 380 + (index % 2) * 60
        draw.ellipse((x - 45, y, x + 45, y + 150), fill=(176, 96, 56))
        draw.rectangle((x - 12, y - 50, x + 12, y + 10), fill=(176, 96, 56))
        draw.line([(x - 12, y - 30), (x - 40, y + 20)], fill=(150, 80, 45), width=6)
        draw.line([(x + 12, y - 30), (x + 40, y + 20)], fill=(150, 80, 45), width=6)
    return image


PICTURES: dict[str, Callable[[], Image.Image]] = {
    "nordic-grid.jpg": grid_in_snow,
    "ningaloo-reef.jpg": reef,
    "lisbon-water.jpg": water_and_sun,
    "baltic-ferry.jpg": ferry_in_ice,
    "crete-amphorae.jpg": amphorae,
}


def main() -> None:
    """Write every picture beside this script."""
    for name, draw in PICTURES.items():
        draw().save(HERE / name, "JPEG", quality=88, progressive=True, optimize=True)
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
