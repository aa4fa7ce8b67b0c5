"""The render stamp: proof that an issue folder's parts to send (``.send.html`` and
``.send.txt``, slots unfilled) are still what rendering its issue.json would give now, so
``send`` can use them instead of rendering again.

``newsletter compose`` and ``newsletter render`` write ``.render.json`` beside the parts:

    {"format": 2, "fingerprint": "<sha256>", ".send.html": "<sha256>", ".send.txt": "<sha256>"}

``fingerprint`` is the sha256 of everything the render reads: the issue.json bytes; every
file the theme lookup can see (the workspace's ``templates/`` folder and the packaged
theme, each name and content); the issue folder's name (the web version's URL comes from
it); the validated config as the render sees it (environment
overrides such as ``NEWSLETTER_BASE_URL`` applied); a keyed hash of the signing key (the
slot tokens come from it); the source of the modules that parse and render an issue; the
Python version, the newsletter version and the versions of the render libraries. The
templates take the date from issue.json and nothing from the clock, so nothing else
feeds the output. The two other entries are the sha256 of the files as written.

A stamp is trusted only when the fingerprint computed now equals it AND both files still
hash to what it says (a hand-edited .send.html is rendered again). A missing, unreadable
or corrupt stamp means "render again", never an error. Nothing here imports the render
stack (jinja2, mjml, premailer).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata, resources
from importlib.abc import Traversable
from pathlib import Path

from newsletter import __version__
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

STAMP_FILE = ".render.json"
STAMP_FORMAT = 2
# the parts the sender fills per recipient; issue.html and issue.txt are the reader's view
SEND_HTML = ".send.html"
SEND_TXT = ".send.txt"

# Distributions whose behaviour shapes the output: the template engine and its escaping,
# the MJML compiler, the CSS inliner and the parsers it works with.
RENDER_DISTRIBUTIONS = (
    "jinja2",
    "markupsafe",
    "mjml-python",
    "premailer",
    "cssutils",
    "cssselect",
    "lxml",
)
# Our own code between issue.json and the parts: parsing, the model, the slots and the
# whole render/ package. An editable install keeps its version number while this code
# changes, so the version alone would not do; a folder here stands for its .py files.
RENDER_SOURCES = ("compose/issue_file.py", "models.py", "mail/slots.py", "render")


@dataclass(frozen=True)
class Stamp:
    """A parsed ``.render.json``: the inputs' fingerprint and the sha256 of each part."""

    fingerprint: str
    html_sha256: str
    text_sha256: str


def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data`` as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()


def _feed(digest: hashlib._Hash, label: str, data: bytes) -> None:
    """Add one labelled, length-prefixed part, so no two input sets hash alike by accident."""
    name = label.encode("utf-8")
    digest.update(len(name).to_bytes(4, "big") + name)
    digest.update(len(data).to_bytes(8, "big") + data)


def _workspace_templates(folder: Path) -> Iterator[tuple[str, Path]]:
    """(name relative to ``folder``, path) of every file under ``folder``, sorted by name.

    Symlinked folders are followed (Jinja's loader reads through them), each real folder once.
    """
    if not folder.is_dir():
        return
    found: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for current, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(current)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        for name in files:
            path = Path(current) / name
            found.append((path.relative_to(folder).as_posix(), path))
    yield from sorted(found)


def _packaged_files(folder: Traversable, prefix: str = "") -> Iterator[tuple[str, bytes]]:
    """(name, content) of every file under the packaged ``folder``, sorted by name."""
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.is_dir():
            yield from _packaged_files(entry, f"{prefix}{entry.name}/")
        else:
            yield prefix + entry.name, entry.read_bytes()


def _render_sources(package: Traversable) -> Iterator[tuple[str, bytes]]:
    """(name, content) of each of ``RENDER_SOURCES``, a folder's .py files one by one."""
    for name in RENDER_SOURCES:
        entry = package.joinpath(*name.split("/"))
        if not entry.is_dir():
            yield name, entry.read_bytes()
            continue
        for inner, content in _packaged_files(entry, f"{name}/"):
            if inner.endswith(".py"):
                yield inner, content


def _distribution_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def render_fingerprint(ws: Workspace, issue_json: bytes, folder_name: str = "") -> str | None:
    """The sha256 (hex) of everything rendering ``issue_json`` in ``ws`` depends on,
    including ``folder_name`` (the issue folder's name: the web version's URL).

    None when one of those inputs cannot be read (then no stamp is trusted or written).
    """
    digest = hashlib.sha256()
    _feed(digest, "stamp format", str(STAMP_FORMAT).encode())
    _feed(digest, "issue.json", issue_json)
    _feed(digest, "folder name", folder_name.encode("utf-8"))
    _feed(digest, "config", ws.config.model_dump_json().encode("utf-8"))
    # the slot tokens in the parts come from the signing key: a new key means a new
    # render (fed as a keyed hash of its own, which tells nothing about the tokens)
    key = ws.secret_keys()[0].encode("utf-8")
    _feed(digest, "signing key", hmac.new(key, b"newsletter.render-stamp", "sha256").digest())
    _feed(digest, "python", ".".join(map(str, sys.version_info[:3])).encode())
    _feed(digest, "newsletter", __version__.encode())
    for name in RENDER_DISTRIBUTIONS:
        _feed(digest, f"version {name}", _distribution_version(name).encode())
    package = resources.files("newsletter")
    try:
        for name, content in _render_sources(package):
            _feed(digest, f"module {name}", content)
        for name, content in _packaged_files(package / "templates"):
            _feed(digest, f"theme {name}", content)
        for name, path in _workspace_templates(ws.templates_dir):
            _feed(digest, f"workspace {name}", path.read_bytes())
    except OSError as exc:
        log.debug("no render fingerprint: %s", exc)
        return None
    return digest.hexdigest()


def stamp_text(fingerprint: str, html: str, text: str) -> str:
    """The content of ``.render.json`` for parts ``html`` and ``text`` (written as UTF-8)."""
    stamp = {
        "format": STAMP_FORMAT,
        "fingerprint": fingerprint,
        SEND_HTML: sha256_hex(html.encode("utf-8")),
        SEND_TXT: sha256_hex(text.encode("utf-8")),
    }
    return json.dumps(stamp, indent=2) + "\n"


def read_stamp(folder: Path) -> Stamp | None:
    """``folder``/.render.json -> Stamp; None when it is missing, unreadable or not one."""
    try:
        data = json.loads((folder / STAMP_FILE).read_bytes())
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
        log.debug("%s: no usable render stamp (%s)", folder, exc)
        return None
    if not isinstance(data, dict) or data.get("format") != STAMP_FORMAT:
        log.debug("%s: render stamp of an unknown format", folder)
        return None
    values = (data.get("fingerprint"), data.get(SEND_HTML), data.get(SEND_TXT))
    if not all(isinstance(value, str) and len(value) == 64 for value in values):
        log.debug("%s: render stamp without its three sha256 values", folder)
        return None
    fingerprint, html_sha, text_sha = (str(value) for value in values)
    return Stamp(fingerprint=fingerprint, html_sha256=html_sha, text_sha256=text_sha)


def stamped_parts(ws: Workspace, folder: Path, issue_json: bytes) -> tuple[str, str] | None:
    """(html, text) to send, read from ``folder`` when its stamp proves them fresh for
    ``issue_json``.

    None (and a debug line saying why) when the stamp is missing or corrupt, when any
    input changed since it was written, or when either file no longer matches it.
    """
    stamp = read_stamp(folder)
    if stamp is None:
        return None
    if render_fingerprint(ws, issue_json, folder.resolve().name) != stamp.fingerprint:
        log.debug("%s: issue.json, templates, config or versions changed since the render", folder)
        return None
    try:
        html = (folder / SEND_HTML).read_bytes()
        text = (folder / SEND_TXT).read_bytes()
    except OSError as exc:
        log.debug("%s: cannot read the rendered parts (%s)", folder, exc)
        return None
    if sha256_hex(html) != stamp.html_sha256 or sha256_hex(text) != stamp.text_sha256:
        log.debug("%s: %s or %s was changed after the render", folder, SEND_HTML, SEND_TXT)
        return None
    try:
        return html.decode("utf-8"), text.decode("utf-8")
    except UnicodeDecodeError:  # cannot happen for files we hashed as written; be safe
        return None
