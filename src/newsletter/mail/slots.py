"""Recipient slots: the one grammar the renderer writes and the sender fills.

What differs per recipient (address, name, unsubscribe link, attributes) is left in the
rendered issue as a slot and filled once per recipient. A slot is only ever written by
the renderer, so that text from an article (a feed's title, an image URL, a page's
description) can never become one, however it is spelt:

- the editor writes ``%%name%%`` in the subject, preheader and intro, and templates call
  ``slot("name")``;
- the renderer writes every slot as ``%%<marker>.name%%``, where the marker is an HMAC of
  the workspace's signing key: nobody without the key can write a token the filler
  takes, and the same key gives the same output (golden files, the render stamp);
- the filler fills only tokens carrying a marker of one of the workspace's keys (the
  older keys too, so a campaign rendered before a key rotation still sends); any other
  ``%%word%%`` is text and stays as it is.

The token holds nothing mjml-python, premailer or quoted-printable rewrites (letters,
digits, ``.``, ``_``, ``%``), so it survives every stage byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import html as html_lib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from newsletter.errors import RenderError
from newsletter.workspace import Workspace

SLOT_NAME_RE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)?")
KNOWN_SLOTS = frozenset({"email", "name", "first_name", "greeting_name", "unsubscribe_url"})
ATTR_PREFIX = "attr."
UNSUBSCRIBE_SLOT = "unsubscribe_url"
# what the editor writes in issue.json's subject, preheader and intro
EDITOR_SLOT_RE = re.compile(r"%%(" + SLOT_NAME_RE.pattern + r")%%")
MARKER_LENGTH = 16
# a word joiner: invisible, and it keeps "%%" in copied text from reading as a slot
_JOINER = "\u2060"

_FILLABLE = "(?:" + "|".join(sorted(KNOWN_SLOTS, key=len, reverse=True)) + r"|attr\.[a-z0-9_]+)"


def is_slot_name(name: str) -> bool:
    """True for a documented slot name or ``attr.KEY`` (lower case, digits, ``_``)."""
    return bool(SLOT_NAME_RE.fullmatch(name)) and (
        name in KNOWN_SLOTS or name.startswith(ATTR_PREFIX)
    )


def slot_marker(key: str) -> str:
    """The marker (16 hex digits) that signing key ``key`` gives every slot token."""
    digest = hmac.new(key.encode("utf-8"), b"newsletter.slot-marker", hashlib.sha256)
    return digest.hexdigest()[:MARKER_LENGTH]


def defuse(text: str) -> str:
    """``text`` (taken from an article into an editor field) with every ``%%name%%`` in it
    broken by an invisible word joiner, so rendering never reads it as a slot."""
    return EDITOR_SLOT_RE.sub(lambda m: f"%{_JOINER}%{m.group(1)}%{_JOINER}%", text)


@dataclass(frozen=True)
class SlotGrammar:
    """The slot tokens of one workspace: written with ``markers[0]``, read with any.

    ``markers`` come from the signing keys, newest first (see ``for_keys``).
    """

    markers: tuple[str, ...]
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.markers or not all(re.fullmatch(r"[0-9a-f]+", m) for m in self.markers):
            raise ValueError("a slot grammar needs at least one hex marker")
        markers = "|".join(self.markers)
        # group 1: the slot name; only fillable names match, so nothing else is touched
        pattern = re.compile(r"%%(?:" + markers + r")\.(" + _FILLABLE + r")%%")
        object.__setattr__(self, "pattern", pattern)

    @classmethod
    def for_keys(cls, keys: Sequence[str]) -> SlotGrammar:
        """The grammar for signing ``keys`` (newest first)."""
        return cls(tuple(dict.fromkeys(slot_marker(key) for key in keys)))

    def token(self, name: str) -> str:
        """The slot token for ``name`` (e.g. ``"unsubscribe_url"``): templates' ``slot()``.

        Only the documented slots and ``attr.KEY`` are accepted, so a typo in a template
        fails the render instead of reaching subscribers. Raises RenderError otherwise.
        """
        if not is_slot_name(name):
            known = ", ".join(sorted(KNOWN_SLOTS))
            raise RenderError(
                f"unknown recipient slot {name!r}",
                hint=f"use one of {known} or attr.KEY (lower case, digits, _)",
            )
        return f"%%{self.markers[0]}.{name}%%"

    def mark(self, text: str) -> str:
        """Editor text (subject, preheader, intro) with its ``%%name%%`` slots turned into
        tokens; any other ``%%word%%`` stays text."""
        return EDITOR_SLOT_RE.sub(
            lambda m: self.token(m.group(1)) if is_slot_name(m.group(1)) else m.group(0), text
        )

    def names(self, text: str) -> set[str]:
        """The names of every slot token in ``text``."""
        return set(self.pattern.findall(text))

    def plain(self, text: str) -> str:
        """``text`` with every token written back as ``%%name%%``, for showing to people."""
        return self.pattern.sub(lambda m: f"%%{m.group(1)}%%", text)

    def fill(self, text: str, values: Mapping[str, str], *, html: bool) -> str:
        """``text`` with every slot token replaced by its value from ``values``.

        Values are HTML-escaped when ``html`` is true. An ``attr.KEY`` slot without a
        value becomes ""; a known slot missing from ``values`` raises RenderError, since
        sending the unsubscribe token itself to a person is never right.
        """
        escape: Callable[[str], str] = html_lib.escape if html else str

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in values:
                return escape(values[name])
            if name.startswith(ATTR_PREFIX):
                return ""
            raise RenderError(f"no value for recipient slot %%{name}%%")

        return self.pattern.sub(replace, text)


def slot_grammar(ws: Workspace) -> SlotGrammar:
    """The slot grammar of ``ws``'s signing keys."""
    return SlotGrammar.for_keys(ws.secret_keys())
