"""Images that an HTML page or a feed read from disk names by a relative path.

A page or feed saved on disk may name its picture as a file beside it
(``<meta property="og:image" content="images/harbour.jpg">``, a feed's
``<media:content url="images/harbour.jpg">``). Such a file is hosted like a Markdown
image (``compose.hosting``), but only when it stays inside the workspace: the path,
with every ``..`` and symlink followed, must lead to a file under the workspace
folder. So a page saved from the web can never make compose copy a private file from
elsewhere on the disk into a public issue; such an image is left out with a warning
naming the article.

A path that is absolute, or relative but with no file beside the article, is never
read from disk: it is resolved against the page's own address as before (a saved
page's ``/static/x.jpg`` is on its site), or left out when there is none. Pages and
feeds fetched over http(s) never come here.

In: an Article as the HTML or feed reader gave it, the folder of its file and the
workspace folder. Out: the Article with an image that is a file path compose hosts,
a web address, or none.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath, PureWindowsPath

from newsletter.compose.ingest.fields import is_local_reference, web_url
from newsletter.models import Article

log = logging.getLogger(__name__)


def is_absolute_path(value: str) -> bool:
    """True for "/srv/a.jpg", "\\\\host\\a.jpg" or "C:\\a.jpg": a path from the disk's root."""
    value = value.strip()
    return PurePosixPath(value).is_absolute() or PureWindowsPath(value).anchor != ""


def inside_workspace(folder: Path, ref: str, root: Path) -> Path | None:
    """The file ``ref`` (relative to ``folder``) names, when it and every link on the way
    stay under ``root`` -> its resolved path; None when it leads out."""
    try:
        resolved = (folder / ref).resolve()
        return resolved if resolved.is_relative_to(root.resolve()) else None
    except (OSError, RuntimeError):  # a symlink loop is no picture
        return None


def with_disk_image(article: Article, folder: Path, root: Path | None) -> Article:
    """``article`` (read from a file in ``folder``) with its image checked by the rules in
    the module docstring: a relative path to a file inside ``root`` is kept as written;
    one that leads outside is dropped with a warning; anything else is resolved against
    the article's address (or dropped) as a remote page's would be."""
    ref = article.image.strip()
    if not ref or not is_local_reference(ref):
        return article
    where = f"{article.source}: {article.title!r}"
    on_disk = not is_absolute_path(ref) and (folder / ref).is_file()
    if root is not None and on_disk:
        if inside_workspace(folder, ref, root) is None:
            log.warning(
                "%s: image %s leads outside the workspace; left out "
                "(keep the picture in the workspace folder, beside the article)",
                where,
                ref,
            )
            article.image = ""
            article.image_alt = ""
            return article
        article.image = ref
        return article
    if is_absolute_path(ref) and not article.url:
        log.warning(
            "%s: image %s is an absolute path; left out (name it relative to the article, "
            "inside the workspace)",
            where,
            ref,
        )
        article.image = ""
    else:
        article.image = web_url(ref, article.url, where=f"{where} image")
    if not article.image:
        article.image_alt = ""
    return article
