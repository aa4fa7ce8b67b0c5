"""``newsletter archive build DIR``: the archive as static files, for any static host.

The files are the bytes ``serve`` answers with (``archive.site``), at the same paths
under DIR as under the base URL: ``archive/index.html`` (the first index page),
``archive/page/N/index.html``, ``archive/<slug>/index.html``, ``archive/feed.xml``,
``media/`` (the image files of each published issue's ``media/`` folder) and ``404.html``
(the page ``serve`` shows for a missing address; most static hosts use it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from newsletter.archive.query import public_issues
from newsletter.archive.site import Site, build_site
from newsletter.errors import NewsletterError
from newsletter.files import atomic_write
from newsletter.store import open_store_for
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildReport:
    """What ``build_archive`` wrote: the folder, the number of issues, and of files."""

    folder: Path
    issues: int
    files: int


def load_site(ws: Workspace) -> tuple[Site, int]:
    """The archive of ``ws`` as it is now -> (Site, number of published issues)."""
    with open_store_for(ws) as store:
        issues = public_issues(store, ws)
    return build_site(ws, issues), len(issues)


def file_path(page_path: str) -> str:
    """A page's path -> the file a static host serves for it (a folder -> its index.html)."""
    return f"{page_path}index.html" if page_path.endswith("/") else page_path


def build_archive(ws: Workspace, folder: Path) -> BuildReport:
    """Write the archive into ``folder`` (made when missing; other files there stay).

    Every page is built in memory first, so a broken template writes nothing; each file
    is then written whole or not at all. Raises NewsletterError when ``folder`` cannot
    be written, RenderError for a broken page template.
    """
    site, count = load_site(ws)
    files = {file_path(path): page.body for path, page in site.pages.items()}
    files["404.html"] = site.not_found
    try:
        for relative, body in files.items():
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, body)
        copied = _copy_media(site, folder / "media")
    except OSError as exc:
        raise NewsletterError(
            f"{folder}: cannot write the archive ({exc.strerror or exc})",
            hint="name a folder you can write to",
        ) from None
    log.info("archive of %d issues written to %s", count, folder)
    return BuildReport(folder=folder, issues=count, files=len(files) + copied)


def _copy_media(site: Site, target: Path) -> int:
    """Copy the files of every published issue's media/ folder into ``target`` -> count.
    Their names are content hashes, so a file already there is the same file."""
    copied = 0
    for media in site.media_folders:
        for source in sorted(media.iterdir()):
            if not source.is_file() or source.name.startswith("."):
                continue
            target.mkdir(parents=True, exist_ok=True)
            if not (target / source.name).exists():
                atomic_write(target / source.name, source.read_bytes())
            copied += 1
    return copied
