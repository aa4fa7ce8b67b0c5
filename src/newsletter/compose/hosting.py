"""Which images an issue hosts itself, and the teasers that then point at them.

A local image file (named by Markdown front matter or body, a page or feed on disk
inside the workspace (``ingest.disk_images``), or a hand-edited issue.json) is always
hosted; a remote one (from a feed or page) only with ``[images] rehost = true``, fetched
once with the limits of a URL source. Each becomes a file in the issue folder's
``media/`` (``compose.images.prepare_image``) and the teaser's ``image`` becomes
``{base_url}/media/<name>``, with ``image_width`` / ``image_height`` and
``image_original`` (what the source named) beside it.

A local file that is missing or not a usable image stops the compose (the editor named
it); a remote image that cannot be fetched or read is left out of its teaser with a
warning, so readers never load it from the third party after all.

In: a workspace and the articles (or issue) to compose. Out: ``Hosting``: per article
the hosted image or None, the media files to write, warnings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from newsletter.compose.images import PreparedImage, prepare_image
from newsletter.compose.ingest.fields import is_local_reference, is_web_url
from newsletter.errors import SourceError
from newsletter.media import media_name_of, media_url
from newsletter.models import Article, Issue, Teaser
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

# a camera's largest files stay well below this; anything bigger is no picture for a mail
MAX_LOCAL_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class HostedImage:
    """One image as the issue hosts it: its ``url``, size in px, and what the source named."""

    url: str
    width: int
    height: int
    original: str


@dataclass
class Hosting:
    """What hosting an issue's images gave: ``media`` (file name -> bytes, to write into
    the issue folder's media/), ``warnings`` and ``dropped`` (remote images left out)."""

    media: dict[str, bytes] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # indexes of the articles whose remote image could not be hosted: left out
    dropped: set[int] = field(default_factory=set)

    def add(self, ws: Workspace, prepared: PreparedImage, original: str) -> HostedImage:
        """Keep ``prepared`` to write and return how a teaser points at it."""
        self.media[prepared.name] = prepared.data
        return HostedImage(
            url=media_url(ws, prepared.name),
            width=prepared.width,
            height=prepared.height,
            original=original,
        )


def _shown_path(ws: Workspace, path: Path) -> str:
    """``path`` relative to the workspace when inside it, for issue.json and messages."""
    try:
        return path.resolve().relative_to(ws.root.resolve()).as_posix()
    except ValueError:
        return str(path)


def local_image(
    ws: Workspace, hosting: Hosting, ref: str, bases: list[Path], where: str
) -> HostedImage:
    """Host the local image file ``ref`` (absolute, or relative to the first of ``bases``
    holding it) -> HostedImage; SourceError naming ``where`` and ``ref`` when it is
    missing, too large or not a usable image."""
    candidates = [Path(ref)] if Path(ref).is_absolute() else [base / ref for base in bases]
    path = next((candidate for candidate in candidates if candidate.is_file()), None)
    if path is None:
        looked = ", ".join(str(base) for base in bases) if not Path(ref).is_absolute() else ref
        raise SourceError(
            f"{where}: image {ref}: no such file (looked in {looked})",
            hint="check the path: it is relative to the article file or the workspace",
        )
    try:
        if path.stat().st_size > MAX_LOCAL_BYTES:
            raise SourceError(
                f"{where}: image {ref} is larger than {MAX_LOCAL_BYTES // (1024 * 1024)} MB",
                hint="save a smaller copy (the mail shows it at most 1200 px wide)",
            )
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(
            f"{where}: cannot read image {ref} ({exc.strerror or exc})",
            hint="check the file's permissions",
        ) from None
    return hosting.add(ws, prepare_image(data, f"{where}: image {ref}"), _shown_path(ws, path))


def remote_image(ws: Workspace, hosting: Hosting, url: str, where: str) -> HostedImage | None:
    """Fetch ``url`` once (the limits of a URL source) and host it -> HostedImage; None,
    with a warning, when it cannot be fetched or is no usable image."""
    from newsletter.compose.ingest.fetch import fetch  # httpx: only when rehosting

    try:
        fetched = fetch(url, timeout=ws.config.compose.fetch_timeout)
        prepared = prepare_image(fetched.body, f"{where}: image {url}")
    except SourceError as exc:
        hosting.warnings.append(f"{where}: image left out, it could not be hosted: {exc}")
        log.warning("%s: image left out, it could not be hosted: %s", where, exc)
        return None
    return hosting.add(ws, prepared, url)


def host_article_images(
    ws: Workspace, articles: list[Article]
) -> tuple[list[HostedImage | None], Hosting]:
    """Per article, its image as hosted (None: kept as it is, or none) and the Hosting.

    Local files are hosted always, remote images with ``[images] rehost``. Raises
    SourceError for a local file that is missing or not a usable image.
    """
    hosting = Hosting()
    hosted: list[HostedImage | None] = []
    rehost = ws.config.images.rehost
    for index, article in enumerate(articles):
        where = article.source
        image = article.image
        if image and is_local_reference(image) and not is_web_url(article.source):
            bases = [Path(article.source).parent, ws.root]
            hosted.append(local_image(ws, hosting, image, bases, where))
        elif image and rehost and is_web_url(image) and not media_name_of(ws, image):
            image_hosted = remote_image(ws, hosting, image, f"{where}: {article.title!r}")
            if image_hosted is None:
                hosting.dropped.add(index)
            hosted.append(image_hosted)
        else:
            hosted.append(None)
    return hosted, hosting


def with_hosted(teaser: Teaser, image: HostedImage | None, *, dropped: bool) -> Teaser:
    """``teaser`` pointing at ``image`` (or without any image when ``dropped``)."""
    if image is not None:
        return replace(
            teaser,
            image=image.url,
            image_width=image.width,
            image_height=image.height,
            image_original=image.original,
        )
    if dropped:
        return replace(teaser, image="", image_alt="", image_width=0, image_height=0)
    return teaser


def host_issue_images(ws: Workspace, folder: Path, issue: Issue) -> tuple[Issue, Hosting]:
    """``issue`` (read from ``folder``/issue.json) with every teaser image that names a local
    file hosted -> (the issue as it is to be written, Hosting); SourceError for a missing
    or unusable file. Files are looked for beside issue.json, then in the workspace."""
    hosting = Hosting()
    teasers = []
    for number, teaser in enumerate(issue.teasers):
        if teaser.image and is_local_reference(teaser.image):
            where = f"{folder / 'issue.json'}: teasers[{number}]"
            image = local_image(ws, hosting, teaser.image, [folder, ws.root], where)
            teaser = with_hosted(teaser, image, dropped=False)
        teasers.append(teaser)
    return replace(issue, teasers=teasers), hosting
