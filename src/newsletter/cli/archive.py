"""``archive build DIR``: the public archive as static files."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.state import counted, current_workspace
from newsletter.textsafe import printable


@click.group()
def archive() -> None:
    """The public archive of sent issues ('newsletter serve' shows it at /archive/)."""


@archive.command("build")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def build(ctx: click.Context, folder: Path) -> None:
    """Write the archive (index pages, one page per issue, feed.xml, media/) into FOLDER,
    at the same paths as under the base URL, for any static host."""
    from newsletter.archive.build import build_archive

    ws = current_workspace(ctx)
    report = build_archive(ws, folder)
    click.echo(
        f"wrote {counted(report.files, 'file')} ({counted(report.issues, 'issue')}) "
        f"to {printable(str(report.folder))}"
        f"; publish it at {printable(ws.base_url)}/"
    )
