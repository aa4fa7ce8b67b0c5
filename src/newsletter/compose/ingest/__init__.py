"""Ingest: every kind of article source in, the same ``Article`` out.

Readers: plain-text scrapes (``text``), HTML pages (``webpage``, trafilatura),
Markdown with YAML front matter (``markdown_file``), RSS/Atom feeds (``feed``,
feedparser) and http(s) URLs (``fetch``, httpx). ``boilerplate`` holds the line rules
that keep breadcrumbs, credits and share buttons out of every reader's text.

Public API: ``read_source(source, *, timeout) -> list[Article]`` and
``expand_sources(sources) -> list[str]``; both in ``read``.
"""

from newsletter.compose.ingest.read import expand_sources, read_source

__all__ = ["expand_sources", "read_source"]
