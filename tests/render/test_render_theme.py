"""Listing the packaged theme and copying a file into the workspace to override it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.errors import NewsletterError
from newsletter.models import Issue, Teaser
from newsletter.render.pipeline import render_issue
from newsletter.render.theme import copy_theme_file, theme_files
from newsletter.workspace import Workspace


def test_lists_the_packaged_files_and_marks_overrides(workspace: Workspace) -> None:
    names = {item.name: item.overridden for item in theme_files(workspace)}
    assert names["issue.mjml.j2"] is False
    assert "pages/confirm_unsubscribe.html.j2" in names
    (workspace.templates_dir / "issue.txt.j2").write_text("x", encoding="utf-8")
    assert {i.name: i.overridden for i in theme_files(workspace)}["issue.txt.j2"] is True


def test_copied_file_is_used_and_never_clobbered(workspace: Workspace) -> None:
    target = copy_theme_file(workspace, "issue.txt.j2")
    assert target == workspace.templates_dir / "issue.txt.j2"
    target.write_text(
        target.read_text(encoding="utf-8") + "\nEdited by the workspace.\n", encoding="utf-8"
    )
    issue = Issue(subject="S", date="2026-11-28", teasers=[Teaser(title="T", summary="Sum.")])
    assert "Edited by the workspace." in render_issue(workspace, issue).text
    with pytest.raises(NewsletterError, match="exists already"):
        copy_theme_file(workspace, "issue.txt.j2")
    copy_theme_file(workspace, "issue.txt.j2", force=True)
    assert "Edited by the workspace." not in target.read_text(encoding="utf-8")


def test_copies_into_subfolders(workspace: Workspace) -> None:
    target = copy_theme_file(workspace, "pages/base.html.j2")
    assert target.is_file() and target.parent.name == "pages"


def test_unknown_name_is_an_error(workspace: Workspace) -> None:
    with pytest.raises(NewsletterError, match="theme list"):
        copy_theme_file(workspace, "nope.j2")


def test_cli_wiring(workspace: Workspace) -> None:
    runner = CliRunner()
    listed = runner.invoke(cli, ["-w", str(workspace.root), "theme", "list"])
    assert listed.exit_code == 0 and "issue.mjml.j2" in listed.output
    copied = runner.invoke(cli, ["-w", str(workspace.root), "theme", "copy", "issue.mjml.j2"])
    assert copied.exit_code == 0, copied.output
    assert (workspace.templates_dir / "issue.mjml.j2").is_file()
    again = runner.invoke(cli, ["-w", str(workspace.root), "theme", "copy", "issue.mjml.j2"])
    assert again.exit_code != 0
