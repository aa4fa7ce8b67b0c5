"""One entry point for every kind of source: a file, a folder, or an http(s) URL.

``read_source`` finds out what a source is (extension, then content sniffing, or the
HTTP content type) and hands it to the reader for that kind. ``expand_sources`` turns
folders into their article files so a caller can read, or skip, one file at a time.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from newsletter.compose.ingest.disk_images import with_disk_image
from newsletter.compose.ingest.feed import read_feed
from newsletter.compose.ingest.fetch import fetch
from newsletter.compose.ingest.fields import is_local_reference, is_web_url, web_url
from newsletter.compose.ingest.markdown_file import read_markdown
from newsletter.compose.ingest.sniff import (
    KIND_BY_EXTENSION,
    Kind,
    check_bytes,
    decode_html,
    decode_utf8,
    kind_from_content_type,
    kind_from_name,
    sniff_kind,
)
from newsletter.compose.ingest.text import read_text
from newsletter.compose.ingest.webpage import read_html
from newsletter.errors import SourceError
from newsletter.models import Article

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 20 * 1024 * 1024


# a URL of another kind (ftp://, file://); a file whose name looks like one is still a file
_OTHER_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")


def read_source(source: str, *, timeout: float = 15.0, root: Path | None = None) -> list[Article]:
    """Read every article ``source`` holds.

    In: a file path, a folder (all its article files, sorted), or an http(s) URL; the
    network timeout in seconds; the workspace folder ``root``, inside which a page or
    feed on disk may name image files (``disk_images``; None: it may not). Out: the
    articles (one per feed entry; one for any other file or page), their link a
    sendable http(s) URL or "", their image that too or a path to a file on disk
    (Markdown, and pages and feeds inside ``root``). Raises ``SourceError`` naming the
    source and what to do.
    """
    return [_sendable(article) for article in _read(source, timeout=timeout, root=root)]


def _sendable(article: Article) -> Article:
    """``article`` with its link and image normalised by the one URL rule (or dropped); an
    image file's path from a file on disk (only the Markdown reader keeps one) stays."""
    where = f"{article.source}: {article.title!r}"
    article.url = web_url(article.url, where=f"{where} link")
    local = is_local_reference(article.image) and not is_web_url(article.source)
    if not local:
        article.image = web_url(article.image, where=f"{where} image")
    if not article.image:
        article.image_alt = ""
    return article


def _read(source: str, *, timeout: float, root: Path | None) -> list[Article]:
    """The articles of ``source`` as its reader gives them (see ``read_source``)."""
    if source.lower().startswith(("http://", "https://")):
        return _read_url(source, timeout=timeout)
    scheme = _OTHER_SCHEME.match(source)
    if scheme and not Path(source).exists():
        raise SourceError(
            f"{source}: {scheme.group(1)}: addresses cannot be read",
            hint="give an http(s) URL, or a file or folder on disk",
        )
    path = Path(source)
    if path.is_dir():
        files = article_files(path)
        if not files:
            raise SourceError(
                f"folder {source} has no article files",
                hint="put .txt, .html, .md or feed (.xml/.rss/.atom) files in it",
            )
        return [article for file in files for article in _read_file(file, str(file), root)]
    return _read_file(path, source, root)


def expand_sources(sources: list[str]) -> list[str]:
    """``sources`` with each folder replaced by its article files (sorted).

    URLs, files and paths that do not exist are kept as given; so is a folder with no
    article files, so that reading it reports the problem. Never raises.
    """
    expanded: list[str] = []
    for source in sources:
        path = Path(source)
        files = article_files(path) if not is_web_url(source) and path.is_dir() else []
        expanded.extend(str(file) for file in files) if files else expanded.append(source)
    return expanded


def article_files(folder: Path) -> list[Path]:
    """The article files directly in ``folder``, sorted by name.

    Hidden files, README files and files of other kinds (images, CSV, ...) are left out.
    """
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise SourceError(
            f"cannot list folder {folder}: {exc.strerror}", hint="check its permissions"
        ) from None
    files = []
    for entry in entries:
        name = entry.name
        if name.startswith(".") or name.lower().startswith("readme") or not entry.is_file():
            continue
        if entry.suffix.lower() in KIND_BY_EXTENSION:
            files.append(entry)
        else:
            log.info("skipping %s: not an article file type", entry)
    return files


def _read_file(path: Path, source: str, root: Path | None) -> list[Article]:
    """Read, check and parse one file (its pages' and feeds' images checked against
    the workspace ``root``)."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SourceError(
                f"{source} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB",
                hint="that is no article; check the path",
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{source} does not exist", hint="check the path") from None
    except IsADirectoryError:
        raise SourceError(f"{source} is not a file", hint="check the path") from None
    except PermissionError:
        raise SourceError(
            f"cannot read {source}: permission denied", hint="check the file's permissions"
        ) from None
    except OSError as exc:
        raise SourceError(
            f"cannot read {source}: {exc.strerror or exc}", hint="check the path"
        ) from None
    check_bytes(data, source)
    kind = sniff_kind(data, kind_from_name(path.name))
    articles = _parse(data, kind, source)
    if kind in (Kind.HTML, Kind.FEED):
        articles = [with_disk_image(article, path.parent, root) for article in articles]
    return articles


def _read_url(url: str, *, timeout: float) -> list[Article]:
    """Fetch ``url`` and read it as the kind its content type and content say."""
    fetched = fetch(url, timeout=timeout)
    hint = kind_from_content_type(fetched.content_type) or kind_from_name(fetched.url)
    mime = fetched.content_type.split(";", 1)[0].strip().lower()
    if hint is None and mime and not mime.startswith("text/"):
        raise SourceError(
            f"{url} is not an article page or feed (it is {mime})",
            hint="give the address of the article page or the feed",
        )
    check_bytes(fetched.body, url)
    kind = sniff_kind(fetched.body, hint)
    return _parse(
        fetched.body,
        kind,
        url,
        url=fetched.url,
        charset=fetched.charset,
        content_type=fetched.content_type,
    )


def _parse(
    data: bytes,
    kind: Kind,
    source: str,
    *,
    url: str = "",
    charset: str = "",
    content_type: str = "",
) -> list[Article]:
    """Hand the bytes to the reader for ``kind``."""
    log.debug("reading %s as %s", source, kind.value)
    if kind is Kind.FEED:
        return read_feed(data, source, url=url, content_type=content_type)
    if kind is Kind.HTML:
        return [read_html(decode_html(data, source, declared=charset), source, url=url)]
    text = _decode_declared(data, source, charset) if charset else decode_utf8(data, source)
    if kind is Kind.MARKDOWN:
        return [read_markdown(text, source, url=url)]
    article = read_text(text, source)
    article.url = url or article.url
    return [article]


def _decode_declared(data: bytes, source: str, charset: str) -> str:
    """Text a server declared a charset for, decoded with it."""
    try:
        return data.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return decode_utf8(data, source)
