"""``serve``'s scheduler drives the recurring series: its Housekeeper's round is
``run_due``, so a series over a feed URL composes (the fetch runs its own event loop,
which the scheduler thread leaves it free to do) and sends from there."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from crash_fixtures import FEED_PATH, Gate, gate, occurrence_states, url_series_workspace
from series_fixtures import Recorder, add_readers, smtp

from newsletter.store import Store, open_store_for
from newsletter.web.app import WebApp
from newsletter.web.server import Housekeeper
from newsletter.workspace import Workspace

__all__ = ["gate", "smtp"]  # fixtures, used by name

FRIDAY = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
ITEMS = [
    ("Bridge repairs finish early", "bridge", "Thu, 03 Dec 2026 09:00:00 +0000"),
    ("Choir records in the old mine", "choir", "Wed, 02 Dec 2026 09:00:00 +0000"),
]


class _Watch(logging.Handler):
    """Keeps the series' log records; ``sent`` is set once one says an issue was sent."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.sent = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if "sent #" in record.getMessage():
            self.sent.set()


@pytest.fixture
def watch(caplog: pytest.LogCaptureFixture) -> Iterator[_Watch]:
    caplog.set_level(logging.INFO, logger="newsletter.recurring.run")
    handler = _Watch()
    logger = logging.getLogger("newsletter.recurring.run")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture
def serving(workspace_dir: Path, gate: Gate, smtp: object) -> Iterator[tuple[Workspace, Store]]:
    """The URL series' workspace (loaded once the SMTP server is named) and its store."""
    ws = url_series_workspace(workspace_dir, gate)
    gate.write_feed(ITEMS)
    with open_store_for(ws) as store:
        yield ws, store


def test_a_housekeeper_round_composes_the_series(
    serving: tuple[Workspace, Store], smtp: object, gate: Gate
) -> None:
    ws, store = serving
    recorder: Recorder = smtp.handler  # type: ignore[attr-defined]
    housekeeper = Housekeeper(WebApp(ws, store), interval=3600)
    with time_machine.travel(FRIDAY - timedelta(hours=2), tick=True):
        report = housekeeper.tick()
    assert any("composed #1" in line for line in report.recurring), report.lines()
    assert occurrence_states(ws) == [("composed", 1)]
    assert gate.asked == [FEED_PATH]
    assert recorder.to_readers("[TEST] Brief #1:") == Counter({"editor@example.org": 1})


def test_the_scheduler_thread_composes_from_a_url_and_sends(
    serving: tuple[Workspace, Store], smtp: object, gate: Gate, watch: _Watch
) -> None:
    ws, store = serving
    readers = add_readers(ws, 5)
    recorder: Recorder = smtp.handler  # type: ignore[attr-defined]
    housekeeper = Housekeeper(WebApp(ws, store), interval=3600)
    with time_machine.travel(FRIDAY, tick=True):
        housekeeper.start()  # its first round runs at once, in the scheduler thread
        try:
            assert watch.sent.wait(120), [r.getMessage() for r in watch.records]
        finally:
            assert housekeeper.stop(120)
    composed = [r for r in watch.records if "composed #1" in r.getMessage()]
    assert [r.threadName for r in composed] == ["scheduler"]
    assert occurrence_states(ws) == [("sent", 1)]
    assert recorder.to_readers("Brief #1:") == Counter(dict.fromkeys(readers, 1))
