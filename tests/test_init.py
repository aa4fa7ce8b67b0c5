"""``newsletter init``: a new workspace that validates, composes, dry-runs and suits git."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import get_args, get_origin

import pytest
from click.testing import CliRunner

from newsletter.audience.manage import add_subscriber
from newsletter.cli import cli
from newsletter.compose.build import compose_issue
from newsletter.config import ConfigModel
from newsletter.deliver import dry_run
from newsletter.errors import ConfigError
from newsletter.init import init_workspace
from newsletter.store import open_store_for
from newsletter.workspace import load_workspace


def test_init_writes_a_workspace_that_validates(tmp_path: Path) -> None:
    report = init_workspace(tmp_path / "brief")
    root = tmp_path / "brief"
    assert sorted(str(path.relative_to(root)) for path in report.created) == [
        ".gitignore",
        "issues/.gitkeep",
        "newsletter.toml",
        "seeds/example.md",
        "subscribers/subscribers.csv",
        "templates/README.md",
    ]
    workspace = load_workspace(root, environ={})
    assert workspace.config.publication.name == "My Newsletter"
    assert (root / "subscribers" / "subscribers.csv").read_text() == "email,name\n"


def test_every_setting_is_explained_in_the_new_config(tmp_path: Path) -> None:
    init_workspace(tmp_path)
    text = (tmp_path / "newsletter.toml").read_text(encoding="utf-8")
    for section, model in ConfigModel.model_fields.items():
        assert f"[{section}]" in text
        annotation = model.annotation
        assert annotation is not None
        if get_origin(annotation) is list:
            # a list of tables ([[recurring]]) is shown as one commented, indented example
            (table,) = get_args(annotation)
            for key in table.model_fields:
                assert f"\n#   {key} = " in text, f"{section}.{key}"
            continue
        for key in annotation.model_fields:
            assert f"\n{key} = " in text or f"\n# {key} = " in text, f"{section}.{key}"
    # the commented defaults are the schema's defaults: uncommenting them changes nothing
    setting = re.compile(r"^# ([a-z_]+ = .*)$")
    uncommented = "\n".join(
        match[1] if (match := setting.match(line)) else line for line in text.split("\n")
    )
    assert ConfigModel.model_validate(tomllib.loads(uncommented)) == ConfigModel.model_validate(
        tomllib.loads(text)
    )


def test_init_refuses_an_existing_workspace_and_keeps_existing_files(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "README.md").write_text("mine", encoding="utf-8")
    report = init_workspace(tmp_path)
    assert report.kept == [tmp_path.resolve() / "templates" / "README.md"]
    assert (tmp_path / "templates" / "README.md").read_text(encoding="utf-8") == "mine"
    before = (tmp_path / "newsletter.toml").read_bytes()
    with pytest.raises(ConfigError, match=r"newsletter\.toml already exists"):
        init_workspace(tmp_path)
    assert (tmp_path / "newsletter.toml").read_bytes() == before


def test_compose_and_dry_run_work_in_a_new_workspace(tmp_path: Path) -> None:
    init_workspace(tmp_path)
    workspace = load_workspace(tmp_path, environ={"NEWSLETTER_SECRET_KEY": "k"})
    composed = compose_issue(
        workspace,
        [str(tmp_path / "seeds")],
        subject=None,
        intro="",
        preheader="",
        out=None,
        skip_bad=False,
    )
    assert composed.warnings == []
    assert composed.issue.teasers[0].title == "How this newsletter is made"
    with open_store_for(workspace) as store:
        add_subscriber(store, "reader@example.org", list_name=workspace.config.send.list)
    report = dry_run(workspace, composed.folder, tmp_path / "out")
    assert report.count == 1 and (tmp_path / "out" / "manifest.csv").exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_gitignore_keeps_issues_and_ignores_local_state(tmp_path: Path) -> None:
    init_workspace(tmp_path)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)

    def ignored(relative: str) -> bool:
        done = subprocess.run(
            ["git", "-C", str(tmp_path), "check-ignore", "-q", relative], check=False
        )
        return done.returncode == 0

    for kept in ("issues/2026-01-05-my-newsletter/issue.json", "newsletter.toml", "seeds/a.md"):
        assert not ignored(kept), kept
    for local in (
        "subscribers/newsletter.db",
        "subscribers/newsletter.db-wal",
        "subscribers/newsletter.db-shm",
        "subscribers/.secret_key",
        "outbox/1.eml",
        ".venv/bin/python",
        ".cache/teasers/0a1b.json",
    ):
        assert ignored(local), local


def test_cli_init_prints_what_it_made_and_what_next(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "brief")])
    assert result.exit_code == 0, result.output
    assert "created newsletter.toml" in result.stdout
    assert "edit newsletter.toml: the lines marked CHANGE" in result.stdout
    again = CliRunner().invoke(cli, ["init", str(tmp_path / "brief")])
    assert isinstance(again.exception, ConfigError)  # main() makes it one "error:" line


def test_the_next_steps_init_prints_all_succeed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command in init's "next:" list, run as printed in the new folder, exits 0."""
    monkeypatch.chdir(tmp_path)
    printed = CliRunner().invoke(cli, ["init"]).stdout
    commands = [
        step.split(": ", 1)[1]
        for step in printed.split("next:\n", 1)[1].splitlines()
        if ": newsletter " in step and not step.strip().startswith("(")
    ]
    assert [shlex.split(c)[1] for c in commands] == ["compose", "subscribers", "send"]
    for command in commands:
        done = CliRunner().invoke(cli, shlex.split(command)[1:])
        assert done.exit_code == 0, (command, done.output)
    assert "wrote 1 message (" in done.stdout  # the dry run, to the one subscriber
    assert (tmp_path / "outbox" / "dry-run" / "manifest.csv").is_file()


def test_the_recurring_example_uncommented_is_a_valid_series(tmp_path: Path) -> None:
    """Removing the first "#" of each line of the [[recurring]] example gives a series the
    schema accepts, whose sources exist in a new workspace."""
    init_workspace(tmp_path)
    text = (tmp_path / "newsletter.toml").read_text(encoding="utf-8")
    head, example = text.split("\n# [[recurring]]\n")
    lines = ["# [[recurring]]", *example.splitlines()]
    uncommented = "\n".join(line.removeprefix("#") for line in lines)
    config = ConfigModel.model_validate(tomllib.loads(head + "\n" + uncommented))
    (series,) = config.recurring
    assert all((tmp_path / source).exists() for source in series.sources)
