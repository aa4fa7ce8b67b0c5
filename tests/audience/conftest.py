"""Fixtures of the audience tests: the sample workspace's store and bounce settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from newsletter.audience.bounces.process import BounceSettings
from newsletter.store import Store, open_store_for
from newsletter.workspace import Workspace


@pytest.fixture
def store(ws: Workspace) -> Iterator[Store]:
    """The store of the sample workspace (its subscribers imported), closed afterwards."""
    with open_store_for(ws) as opened:
        yield opened


@pytest.fixture
def settings(ws: Workspace) -> BounceSettings:
    """The bounce settings of the sample workspace."""
    return BounceSettings.from_workspace(ws)
