"""The data that flows through the pipeline: Article -> Teaser -> Issue.

Plain dataclasses with JSON round trips. ``Teaser`` and ``Issue`` are also the one
declaration of issue.json: their fields, in the order the file lists them, and the
rules a hand-edited file must keep (``Annotated`` metadata that pydantic checks when
``compose.issue_file`` reads the file; building one in code checks nothing).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints


def _web_address(value: str) -> str:
    # a link or image in a mail must be a web address: "javascript:" and typos never ship
    value = value.strip()
    parts = urlsplit(value)
    if value and (parts.scheme not in ("http", "https") or not parts.netloc or " " in value):
        raise ValueError(f"{value!r} is not a web address like https://example.org/story")
    return value


def _image_address(value: str) -> str:
    # an image is a web address, or (hand-edited) a file that `newsletter render` hosts
    stripped = value.strip()
    scheme = urlsplit(stripped).scheme
    if stripped and not scheme and not stripped.startswith("//") and "\n" not in stripped:
        return stripped
    return _web_address(value)


def _iso_date(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date like 2026-11-28") from None
    return value


def _at_least_one(value: list[Teaser]) -> list[Teaser]:
    if not value:
        raise ValueError("an issue needs at least one teaser")
    return value


NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
WebAddress = Annotated[str, AfterValidator(_web_address)]
ImageAddress = Annotated[str, AfterValidator(_image_address)]
PixelSize = Annotated[int, Field(ge=0, le=100_000)]
IsoDate = Annotated[str, AfterValidator(_iso_date)]


@dataclass
class Article:
    """One extracted article, whatever kind of source it came from.

    ``source`` names where it came from (a path or URL) for error messages;
    ``summary`` is a teaser the source itself gave (front matter, feed summary)
    and wins over any computed one; ``standfirst`` is the publisher's summary printed
    under the headline (a page's dek, a subtitle in front matter), the teaser when it
    fits the word budget. ``guid`` is a feed entry's id (dedupe matches it);
    ``priority`` comes from front matter and orders a selection before the date does.
    """

    title: str
    text: str
    source: str
    url: str = ""
    image: str = ""
    image_alt: str = ""
    byline: str = ""
    published: str = ""
    summary: str = ""
    standfirst: str = ""
    guid: str = ""
    priority: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, JSON-ready."""
        return asdict(self)


@dataclass
class Teaser:
    """One block of an issue: headline, 40-60 word summary, image and link.

    ``image`` is a web address, or a local file's path that ``newsletter render`` hosts
    (see ``compose.hosting``); a hosted image has ``image_width`` / ``image_height`` (its
    pixels; 0 = unknown) and ``image_original``, what the source named.
    """

    # an unknown key in issue.json is a typo to report, never a field to drop
    __pydantic_config__ = ConfigDict(extra="forbid")

    title: NonEmpty
    summary: str
    url: WebAddress = ""
    image: ImageAddress = ""
    image_alt: str = ""
    byline: str = ""
    published: str = ""
    source: str = ""
    image_width: PixelSize = 0
    image_height: PixelSize = 0
    image_original: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, JSON-ready."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Teaser:
        """Build from a dict as written by ``to_dict`` (unknown keys rejected by the caller)."""
        sizes = {"image_width", "image_height"}
        values: dict[str, Any] = {
            key: int(data.get(key) or 0) if key in sizes else str(data.get(key) or "")
            for key in cls.__dataclass_fields__
        }
        return cls(**values)


@dataclass(kw_only=True)
class Issue:
    """An issue as stored in issue.json: the hand-editable source of truth."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    subject: NonEmpty
    preheader: str = ""
    date: IsoDate
    intro: str = ""
    teasers: Annotated[list[Teaser], AfterValidator(_at_least_one)] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, JSON-ready, in the order a person editing issue.json expects."""
        return asdict(self)
