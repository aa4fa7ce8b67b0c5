"""The data that flows through the pipeline: Article -> Teaser -> Issue.

Plain dataclasses with JSON round trips; no behaviour beyond (de)serialising.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Article:
    """One extracted article, whatever kind of source it came from.

    ``source`` names where it came from (a path or URL) for error messages;
    ``summary`` is a teaser the source itself gave (front matter, feed summary)
    and wins over any computed one.
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

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, JSON-ready."""
        return asdict(self)


@dataclass
class Teaser:
    """One block of an issue: headline, 40-60 word summary, image and link."""

    title: str
    summary: str
    url: str = ""
    image: str = ""
    image_alt: str = ""
    byline: str = ""
    published: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, JSON-ready."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Teaser:
        """Build from a dict as written by ``to_dict`` (unknown keys rejected by the caller)."""
        return cls(**{key: str(data.get(key) or "") for key in cls.__dataclass_fields__})


@dataclass
class Issue:
    """An issue as stored in issue.json: the hand-editable source of truth."""

    subject: str
    date: str
    teasers: list[Teaser] = field(default_factory=list)
    preheader: str = ""
    intro: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, JSON-ready, in the order a person editing issue.json expects."""
        return {
            "subject": self.subject,
            "preheader": self.preheader,
            "date": self.date,
            "intro": self.intro,
            "teasers": [teaser.to_dict() for teaser in self.teasers],
        }
