"""Compose an issue: read the sources, summarise each article into a teaser, render,
write a new issue folder; and ``extract_source``, what one source yields.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from newsletter.compose.folder import (
    default_folder,
    is_empty_dir,
    write_issue_folder,
)
from newsletter.compose.issue_file import issue_json
from newsletter.compose.selection import (
    Selection,
    featured_before,
    nothing_new,
    parse_since,
    remember_issue,
    select_articles,
)
from newsletter.errors import FolderTakenError, RenderError, SourceError
from newsletter.mail.slots import defuse
from newsletter.models import Article, Issue, Teaser
from newsletter.render.filters import long_date
from newsletter.render.pipeline import Rendered, render_issue
from newsletter.render.stamp import render_fingerprint
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

PREHEADER_MAX = 140


@dataclass(frozen=True)
class ComposeResult:
    """What ``compose_issue`` made: the ``folder`` written, the ``issue`` in it, the
    sources ``skipped`` (source, reason) with --skip-bad, render ``warnings`` and the size
    of issue.html."""

    folder: Path
    issue: Issue
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    html_bytes: int = 0


def today(ws: Workspace) -> date:
    """Today's date in the publication's time zone."""
    return datetime.now(ZoneInfo(ws.config.publication.timezone)).date()


def default_subject(ws: Workspace, day: date) -> str:
    """``"<publication name> — 28 November 2026"``."""
    return f"{ws.config.publication.name} — {long_date(day)}"


def default_preheader(teasers: list[Teaser], max_length: int = PREHEADER_MAX) -> str:
    """Inbox preview text from the first headlines, joined by " · ", cut at a word.

    The preheader is an editor field, where ``%%name%%`` is a slot: a headline's is defused.
    """
    text = defuse(" · ".join(" ".join(teaser.title.split()) for teaser in teasers[:3]))
    if len(text) <= max_length:
        return text
    return text[: max_length - 1].rsplit(" ", 1)[0].rstrip(" ·,;:") + "…"


def _check_out_folder(out: Path) -> None:
    if out.exists() and not is_empty_dir(out):
        what = "a file" if not out.is_dir() else "a folder that is not empty"
        raise RenderError(
            f"{out}: --out is {what}",
            hint="name a new or empty folder, or leave out --out for a fresh one under issues/",
        )


def _read_articles(
    sources: list[str], *, timeout: float, skip_bad: bool, root: Path
) -> tuple[list[Article], list[tuple[str, str]]]:
    """Every article of every source (folders expanded), plus the (source, reason) skipped;
    pages and feeds on disk may name image files inside the workspace ``root``. Without
    ``skip_bad``, every bad source is read first, then one SourceError names them all."""
    # imported here: the readers (trafilatura, feedparser) are slow to import, and
    # reading, rendering and sending an issue never need them
    from newsletter.compose.ingest import expand_sources, read_source

    articles: list[Article] = []
    bad: list[tuple[str, SourceError]] = []
    for source in expand_sources(sources):
        try:
            found = read_source(source, timeout=timeout, root=root)
            if not found:
                raise SourceError(f"{source}: holds no article")
        except SourceError as exc:
            if skip_bad:
                log.info("skipping %s: %s", source, exc)
            bad.append((source, exc))
            continue
        articles.extend(found)
    if bad and not skip_bad:
        raise _all_bad(bad)
    return articles, [(source, str(exc)) for source, exc in bad]


def _all_bad(bad: list[tuple[str, SourceError]]) -> SourceError:
    """One error for the sources that could not be read, each with its reason."""
    if len(bad) == 1:
        only = bad[0][1]
        skip = "or pass --skip-bad to leave it out"
        return SourceError(only.message, hint=f"{only.hint}; {skip}" if only.hint else skip)
    skip = "or pass --skip-bad to compose from the others"
    reasons = "; ".join(exc.message for _, exc in bad)
    return SourceError(
        f"{len(bad)} sources could not be read, nothing was written: {reasons}",
        hint=f"fix or remove them, {skip}",
    )


def _without_duplicates(articles: list[Article]) -> tuple[list[Article], list[str]]:
    """``articles`` with repeats (same URL, else same title) removed, and a warning for each."""
    kept: list[Article] = []
    seen: dict[str, Article] = {}
    warnings = []
    for article in articles:
        key = article.url or " ".join(article.title.lower().split())
        if key in seen:
            warnings.append(
                f"{article.source}: same article as {seen[key].source} "
                f"({article.title!r}), left out"
            )
            continue
        seen[key] = article
        kept.append(article)
    return kept, warnings


def build_issue(
    ws: Workspace,
    articles: list[Article],
    *,
    subject: str | None,
    intro: str,
    preheader: str,
    day: date | None = None,
) -> Issue:
    """Teasers for ``articles`` (summarised to the configured word budget) -> Issue dated
    ``day`` (default today)."""
    from newsletter.compose.llm import llm_teasers
    from newsletter.compose.summarize import make_teaser  # pulls in the readers: see _read_articles

    compose = ws.config.compose
    writer = llm_teasers(ws)  # None unless [summarize] engine = "llm"
    teasers = [
        make_teaser(
            article,
            min_words=compose.summary_min_words,
            max_words=compose.summary_max_words,
            writer=writer,
        )
        for article in articles
    ]
    day = day or today(ws)
    return Issue(
        subject=(subject or "").strip() or default_subject(ws, day),
        date=day.isoformat(),
        teasers=teasers,
        preheader=preheader.strip() or default_preheader(teasers),
        intro=intro.strip(),
    )


def _write_new_folder(
    ws: Workspace, issue: Issue, out: Path | None, media: dict[str, bytes]
) -> tuple[Path, Rendered]:
    """Render the issue for ``out`` or a fresh default folder and write it there with its
    hosted images ``media`` (never into someone else's) -> (the folder, its render)."""
    while True:
        folder = out if out is not None else default_folder(ws, issue)
        # the folder's name is the web version's URL: rendered for the name it gets
        name = folder.resolve().name
        # taken before rendering: a template edited meanwhile makes the stamp stale, not wrong
        fingerprint = render_fingerprint(ws, issue_json(issue).encode("utf-8"), name)
        rendered = render_issue(ws, issue, folder_name=name)
        try:
            write_issue_folder(
                folder, issue, rendered, exclusive=True, fingerprint=fingerprint, media=media
            )
            return folder, rendered
        except FolderTakenError:
            if out is not None:
                raise
            # another compose took this name between our look and our rename: next one
            log.info("%s was taken meanwhile; trying the next name", folder)


def gather_articles(
    ws: Workspace,
    sources: list[str],
    *,
    skip_bad: bool,
    since: str | None = None,
    limit: int | None = None,
    allow_repeats: bool = False,
    ordered: bool = True,
) -> tuple[Selection, list[tuple[str, str]]]:
    """Read ``sources`` and select from them (``compose.selection``: dedupe against every
    earlier issue unless ``allow_repeats``, ``since``, order, ``limit``) -> (Selection,
    the sources skipped); ``ordered=False`` keeps the sources' order. A bad source
    raises SourceError unless ``skip_bad``; no article read at all raises SourceError."""
    articles, skipped = _read_articles(
        sources, timeout=ws.config.compose.fetch_timeout, skip_bad=skip_bad, root=ws.root
    )
    if not articles:
        raise SourceError(
            "no article could be read from " + ", ".join(sources),
            hint="check the paths and URLs; newsletter extract SOURCE shows what one yields",
        )
    featured, last_issue = (set(), None) if allow_repeats else featured_before(ws)
    if allow_repeats and since is not None and since.strip().lower() == "last":
        last_issue = featured_before(ws)[1]
    since_date = (
        None if since is None else parse_since(since, today=today(ws), last_issue=last_issue)
    )
    selection = select_articles(
        articles,
        featured=None if allow_repeats else featured,
        since=since_date,
        limit=limit,
        ordered=ordered,
    )
    return selection, skipped


def compose_articles(
    ws: Workspace,
    articles: list[Article],
    *,
    subject: str | None,
    intro: str = "",
    preheader: str = "",
    out: Path | None = None,
    day: date | None = None,
) -> ComposeResult:
    """Summarise ``articles``, render, write a new issue folder (``out`` or a fresh one
    under issues/), and record what it features -> ComposeResult.

    ``out`` already holding an issue raises FolderTakenError and is left alone.
    """
    from newsletter.compose.hosting import host_article_images, with_hosted  # Pillow

    articles, warnings = _without_duplicates(articles)
    hosted, hosting = host_article_images(ws, articles)
    issue = build_issue(ws, articles, subject=subject, intro=intro, preheader=preheader, day=day)
    issue = replace(
        issue,
        teasers=[
            with_hosted(teaser, image, dropped=number in hosting.dropped)
            for number, (teaser, image) in enumerate(zip(issue.teasers, hosted, strict=True))
        ],
    )
    folder, rendered = _write_new_folder(ws, issue, out, hosting.media)
    # after the folder: a crash between the two leaves a folder the next selection
    # reads and records (compose.selection backfills unrecorded issue folders)
    remember_issue(ws, folder, issue, articles)
    log.info("composed %d teasers into %s", len(issue.teasers), folder)
    return ComposeResult(
        folder=folder,
        issue=issue,
        warnings=warnings + hosting.warnings + rendered.warnings,
        html_bytes=len(rendered.reader_html.encode("utf-8")),
    )


def compose_issue(
    ws: Workspace,
    sources: list[str],
    *,
    subject: str | None,
    intro: str,
    preheader: str,
    out: Path | None,
    skip_bad: bool,
    since: str | None = None,
    limit: int | None = None,
    allow_repeats: bool = False,
) -> ComposeResult:
    """Read ``sources`` (files, folders, feeds, URLs), select, summarise, render, write a
    new issue folder.

    The folder is ``out`` (which must be new or empty) or ``<issues_dir>/<date>-<slug>``.
    Articles featured in an earlier issue are left out unless ``allow_repeats``;
    ``since`` ("last", "7d", "2026-12-01") and ``limit`` narrow the selection. A bad
    source raises its SourceError before anything is written, unless ``skip_bad``: then
    it is listed in ``skipped``. No article left -> SourceError saying why.
    """
    if out is not None:
        _check_out_folder(out)
    selection, skipped = gather_articles(
        ws,
        sources,
        skip_bad=skip_bad,
        since=since,
        limit=limit,
        allow_repeats=allow_repeats,
        # by hand without --since / --limit, the editor's order of the sources stands
        ordered=since is not None or limit is not None,
    )
    if not selection.chosen:
        raise nothing_new(selection, sources)
    result = compose_articles(
        ws, selection.chosen, subject=subject, intro=intro, preheader=preheader, out=out
    )
    notes = [
        f"{article.source}: same article as {same.source} ({article.title!r}), left out"
        for article, same in selection.twice
    ] + [
        f"{article.source}: {article.title!r} was featured in an earlier issue; left out"
        for article in selection.repeats
    ]
    return replace(result, skipped=skipped, warnings=notes + result.warnings)


def extract_source(ws: Workspace, source: str) -> list[dict[str, Any]]:
    """What ``source`` yields: one dict per article (its fields, ``summary`` = the teaser)."""
    from newsletter.compose.ingest import read_source
    from newsletter.compose.llm import llm_teasers
    from newsletter.compose.summarize import make_teaser

    compose = ws.config.compose
    writer = llm_teasers(ws)
    items = []
    for article in read_source(source, timeout=compose.fetch_timeout, root=ws.root):
        teaser = make_teaser(
            article,
            min_words=compose.summary_min_words,
            max_words=compose.summary_max_words,
            writer=writer,
        )
        item = article.to_dict()
        item["summary"] = teaser.summary
        item["image_alt"] = teaser.image_alt or article.image_alt
        items.append(item)
    return items
