"""Fixtures of the scheduler tests: a frozen clock, an issue folder, a store with a list."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine

from newsletter.store import Consent, Store, open_store_for
from newsletter.workspace import Workspace

# "now" for every test: a Friday morning, well before the scheduled times
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    """Time frozen at NOW; tests move it with ``clock.move_to`` / ``clock.shift``."""
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def issue_dir(workspace: Workspace) -> Path:
    """A readable issue folder inside the workspace."""
    folder = workspace.issues_dir / "2026-12-01-weekly-brief"
    folder.mkdir(parents=True)
    issue = {
        "subject": "Weekly brief",
        "date": "2026-12-01",
        "teasers": [
            {
                "title": "Harbour reopens",
                "summary": "The harbour reopened.",
                "url": "https://www.example.org/a",
            }
        ],
    }
    (folder / "issue.json").write_text(json.dumps(issue), encoding="utf-8")
    return folder


@pytest.fixture
def store(workspace: Workspace) -> Iterator[Store]:
    """The workspace's store with one subscriber on the list "main"."""
    with open_store_for(workspace) as opened:
        opened.add("ann@example.org", list_name="main", consent=Consent(source="cli"))
        yield opened
