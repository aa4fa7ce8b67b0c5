"""Helpers of the recurring-series tests: a workspace with a weekly series over a feed
file, readers on the list, and a loopback aiosmtpd server that records every message
and can hold messages after a number of them (to kill a sender mid-send)."""

from __future__ import annotations

import asyncio
import email
import threading
from collections import Counter
from collections.abc import Iterator
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from newsletter.store import Consent, ImportRow, open_store_for
from newsletter.workspace import Workspace, load_workspace
from smtp_servers import CountingController

SERIES = """
[[recurring]]
name = "weekly"
every = "{every}"
sources = ["feeds/wire.xml"]
list = "main"
subject = "Brief #{{number}}: {{top_title}}"
min_articles = 1
max_articles = 8
review_before = "2h"
review_to = ["editor@example.org"]
approval = "{approval}"
"""


class Recorder:
    """aiosmtpd handler: records (recipient, subject) of each message; once ``hold_after``
    messages have arrived, holds each further one until ``release`` is set."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.hold_after: int | None = None
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        if self.hold_after is not None and len(self.messages) >= self.hold_after:
            self.holding.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 60)
        for rcpt in envelope.rcpt_tos:
            self.messages.append((rcpt, str(message["Subject"])))
        return "250 2.0.0 taken"

    def to_readers(self, subject_start: str) -> Counter[str]:
        """How many messages each reader got whose subject starts with ``subject_start``."""
        return Counter(rcpt for rcpt, subject in self.messages if subject.startswith(subject_start))


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingController]:
    """A recording aiosmtpd on loopback, named by NEWSLETTER_SMTP_URL."""
    controller = CountingController(Recorder())
    controller.start()
    monkeypatch.setenv("NEWSLETTER_SMTP_URL", f"smtp://127.0.0.1:{controller.port}")
    try:
        yield controller
    finally:
        controller.handler.release.set()
        controller.stop()


ITEM = """  <item>
    <title>{title}</title>
    <link>https://wire.example.org/{slug}?utm_source=feed</link>
    <guid isPermaLink="false">{slug}</guid>
    <pubDate>{date}</pubDate>
    <description>{title}. The town council met on the matter this week and heard from
    residents who had written in. Officials said the work would go on through the winter,
    and that they would report again in spring on what it cost and what it changed for the
    people who live there.</description>
  </item>
"""


def write_feed(root: Path, items: list[tuple[str, str, str]]) -> None:
    """Write feeds/wire.xml with ``items`` (title, slug, RFC 822 date), newest first."""
    body = "".join(ITEM.format(title=t, slug=s, date=d) for t, s, d in items)
    (root / "feeds").mkdir(exist_ok=True)
    (root / "feeds" / "wire.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>\n'
        "<title>Wire</title><link>https://wire.example.org/</link>\n"
        f"{body}</channel></rss>\n",
        encoding="utf-8",
    )


def series_workspace(
    root: Path, *, every: str = "friday 09:00", approval: str = "auto"
) -> Workspace:
    """Add the weekly series to ``root``'s newsletter.toml -> the workspace, reloaded."""
    config = root / "newsletter.toml"
    config.write_text(
        config.read_text(encoding="utf-8") + SERIES.format(every=every, approval=approval),
        encoding="utf-8",
    )
    return load_workspace(root)


def add_readers(ws: Workspace, count: int) -> set[str]:
    """``count`` confirmed readers on the list main -> their addresses."""
    addresses = {f"reader{n:03d}@example.org" for n in range(count)}
    with open_store_for(ws) as store:
        store.import_batch(
            [ImportRow(email=a) for a in sorted(addresses)],
            list_name="main",
            consent=Consent(source="import"),
        )
    return addresses
