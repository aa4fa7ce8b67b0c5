"""Wiring of the CLI entry point: version, errors as one line, workspace discovery."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter import __version__
from newsletter.cli import cli


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_python_dash_m_outside_workspace_is_one_line_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", "render", "somewhere"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: no newsletter.toml")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_broken_config_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text("[publication\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", "render", "x"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "invalid TOML" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [["--help"], ["compose", "--help"]])
def test_help_works_outside_a_workspace(args: list[str], tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    assert "Usage:" in proc.stdout


def test_exit_codes_set_by_commands_reach_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """run-due (1 when a send failed) and an interrupted send (130) exit through ctx.exit."""
    import click

    from newsletter.cli import main

    @cli.command("exit-three", hidden=True)
    @click.pass_context
    def exit_three(ctx: click.Context) -> None:
        ctx.exit(3)

    monkeypatch.setattr(sys, "argv", ["newsletter", "exit-three"])
    try:
        with pytest.raises(SystemExit) as info:
            main()
    finally:
        cli.commands.pop("exit-three")
    assert info.value.code == 3
