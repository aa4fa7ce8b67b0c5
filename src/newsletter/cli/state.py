"""What every command shares: the workspace named by the root group's ``-w`` option."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.workspace import Workspace, load_workspace


class State:
    """The root group's options, stored on the click context for the commands below it."""

    def __init__(self, workspace_path: Path | None) -> None:
        self.workspace_path = workspace_path
        self._workspace: Workspace | None = None

    @property
    def workspace(self) -> Workspace:
        """The workspace, loaded on first use (so ``--help`` works outside one)."""
        if self._workspace is None:
            self._workspace = load_workspace(self.workspace_path)
        return self._workspace


def current_workspace(ctx: click.Context) -> Workspace:
    """The click context of a command -> the workspace the root group was given."""
    state = ctx.find_object(State)
    assert state is not None, "commands run under the root group, which sets State"
    return state.workspace


def counted(count: int, noun: str) -> str:
    """``1, "message"`` -> "1 message"; any other count takes the plural with an "s"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
