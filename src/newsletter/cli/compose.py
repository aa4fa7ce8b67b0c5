"""Making an issue: ``init``, ``extract``, ``compose``, ``render``, ``preview`` and ``theme``."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import click

from newsletter.cli.state import current_workspace
from newsletter.textsafe import printable


@click.command()
@click.argument("folder", required=False, default=".", type=click.Path(path_type=Path))
def init(folder: Path) -> None:
    """Set up a new workspace in FOLDER (default: the current folder).

    Writes a commented newsletter.toml (the lines marked CHANGE are yours to fill in),
    templates/, seeds/ with one example article, subscribers/subscribers.csv (an empty
    import file), issues/ and a .gitignore. It never overwrites: a folder that already
    has a newsletter.toml is refused, and any other file already there is kept.
    """
    from newsletter.init import init_workspace

    report = init_workspace(folder)
    for path in report.created:
        click.echo(f"created {path.relative_to(report.root)}")
    for path in report.kept:
        click.echo(f"kept {path.relative_to(report.root)} (already there)")
    here = [] if report.root == Path.cwd().resolve() else [f"cd {shlex.quote(str(folder))}"]
    steps = [
        *here,
        "edit newsletter.toml: the lines marked CHANGE",
        "put articles in seeds/ and run: newsletter compose seeds/",
        "add yourself: newsletter subscribers add 'Your Name <you@example.org>'",
        "(or list people in subscribers/subscribers.csv and run: "
        "newsletter subscribers import subscribers/subscribers.csv)",
        "look at the result: newsletter send --latest --dry-run outbox/dry-run",
    ]
    click.echo("next:\n" + "\n".join(f"  {step}" for step in steps))


@click.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--subject", help="Subject line (default: the publication name and date).")
@click.option("--intro", default="", help="A short editor's note above the teasers.")
@click.option("--preheader", default="", help="Inbox preview text (default: from the teasers).")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Issue folder to write."
)
@click.option("--skip-bad", is_flag=True, help="Compose from the good sources, list the bad ones.")
@click.option(
    "--since",
    metavar="last|7d|DATE",
    help="Only articles published since the last issue, N days (or 2w) back, or a date.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Feature at most N articles.")
@click.option(
    "--allow-repeats", is_flag=True, help="Also feature articles an earlier issue featured."
)
@click.pass_context
def compose(
    ctx: click.Context,
    sources: tuple[str, ...],
    subject: str | None,
    intro: str,
    preheader: str,
    out: Path | None,
    skip_bad: bool,
    since: str | None,
    limit: int | None,
    allow_repeats: bool,
) -> None:
    """Extract SOURCES (files, folders, feeds, URLs) into a new issue folder."""
    from newsletter.compose.build import compose_issue

    result = compose_issue(
        current_workspace(ctx),
        list(sources),
        subject=subject,
        intro=intro,
        preheader=preheader,
        out=out,
        skip_bad=skip_bad,
        since=since,
        limit=limit,
        allow_repeats=allow_repeats,
    )
    for source, reason in result.skipped:
        click.echo(f"skipped {printable(source)}: {printable(reason)}", err=True)
    for warning in result.warnings:
        click.secho(f"warning: {printable(warning)}", fg="yellow", err=True)
    count = len(result.issue.teasers)
    click.echo(f"composed {count} teaser{'' if count == 1 else 's'} into {result.folder}")
    click.echo(f"open {result.folder / 'issue.html'} or run: newsletter preview {result.folder}")


@click.command()
@click.argument("issue_dir", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def render(ctx: click.Context, issue_dir: Path) -> None:
    """Re-render ISSUE_DIR after editing issue.json or templates (no re-summarising)."""
    from newsletter.compose.folder import render_issue_folder

    result = render_issue_folder(current_workspace(ctx), issue_dir)
    for warning in result.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(f"rendered {result.folder / 'issue.html'} ({result.html_bytes / 1024:.1f} KB)")


@click.command()
@click.argument("source")
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON: an object, or an array for a feed."
)
@click.pass_context
def extract(ctx: click.Context, source: str, as_json: bool) -> None:
    """Show what SOURCE yields: title, byline, image, text and teaser."""
    from newsletter.compose.build import extract_source

    articles: list[dict[str, Any]] = extract_source(current_workspace(ctx), source)
    if as_json:
        payload: Any = articles[0] if len(articles) == 1 else articles
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    for item in articles:
        _echo_article(item)


def _echo_article(item: dict[str, Any]) -> None:
    """Print one extracted article as ``extract`` shows it without ``--json``."""
    # every value here comes from the article: no control characters reach the terminal
    shown = {key: printable(str(value), keep_newlines=True) for key, value in item.items()}
    click.secho(printable(shown["title"]), bold=True)
    for key in ("url", "byline", "published", "image"):
        if item.get(key):
            click.echo(f"{key}: {printable(shown[key])}")
    click.echo(f"\nteaser ({len(item['summary'].split())} words):\n{shown['summary']}\n")
    click.echo(f"text ({len(item['text'].split())} words):\n{shown['text']}\n")


@click.group()
def theme() -> None:
    """The packaged theme: list its files, copy one into templates/ to override it."""


@theme.command("list")
@click.pass_context
def theme_list(ctx: click.Context) -> None:
    """List the theme's files; those templates/ overrides are marked."""
    from newsletter.render.theme import theme_files

    for item in theme_files(current_workspace(ctx)):
        click.echo(f"{item.name}{'  (overridden in templates/)' if item.overridden else ''}")


@theme.command("copy")
@click.argument("name")
@click.option("--force", is_flag=True, help="Replace the workspace's copy if it exists.")
@click.pass_context
def theme_copy(ctx: click.Context, name: str, force: bool) -> None:
    """Copy the theme file NAME into templates/ for editing."""
    from newsletter.render.theme import copy_theme_file

    click.echo(f"copied to {copy_theme_file(current_workspace(ctx), name, force=force)}")


@click.command()
@click.argument("issue_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port on 127.0.0.1; 0 picks a free one.",
)
@click.option("--no-open", is_flag=True, help="Do not open the default browser.")
@click.option(
    "--as",
    "as_address",
    metavar="ADDRESS",
    help="Fill the personal slots from this subscriber (default: a sample one).",
)
@click.pass_context
def preview(
    ctx: click.Context, issue_dir: Path, port: int, no_open: bool, as_address: str | None
) -> None:
    """Serve a live preview of ISSUE_DIR that reloads on every save (Ctrl-C stops it)."""
    from newsletter.preview import run_preview

    result = run_preview(
        current_workspace(ctx),
        issue_dir,
        port=port,
        open_browser=not no_open,
        as_address=as_address,
        on_ready=lambda url: click.echo(f"previewing {issue_dir} at {url} (Ctrl-C to stop)"),
    )
    click.echo(f"preview stopped ({result.renders} render{'' if result.renders == 1 else 's'})")


COMMANDS: tuple[click.Command, ...] = (init, extract, compose, render, preview, theme)
