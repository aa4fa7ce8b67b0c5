"""Recurring series: ``recurring list | show | pause | resume | skip`` and ``approve``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from newsletter.cli.state import current_workspace
from newsletter.textsafe import printable


def _when(zone: ZoneInfo, moment: datetime | None) -> str:
    """``Thu 2026-12-10 16:00 CET (2026-12-10 15:00 UTC)`` for an aware time, or "no more"."""
    if moment is None:
        return "no more (the rule has ended)"
    local = moment.astimezone(zone)
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname()} ({moment:%Y-%m-%d %H:%M} UTC)"


@click.group()
def recurring() -> None:
    """Recurring series ([[recurring]] in newsletter.toml), driven by run-due or serve."""


@recurring.command("list")
@click.pass_context
def recurring_list(ctx: click.Context) -> None:
    """Each series: its next time (local and UTC) and what it would feature now."""
    from newsletter.recurring.manage import series_status

    found = series_status(current_workspace(ctx))
    if not found:
        click.echo("no recurring series (add a [[recurring]] table to newsletter.toml)")
    for status in found:
        series = status.series
        state = "paused" if status.paused else f"every {series.every}"
        click.secho(f"{series.name}  ({state}, to list {series.list})", bold=True)
        skipped = "  (the time before it is skipped)" if status.next_skipped else ""
        click.echo(f"  next: {_when(status.zone, status.next_at)}{skipped}")
        count = len(status.would_feature)
        enough = (
            ""
            if count >= series.min_articles
            else f" (fewer than {series.min_articles}: it would be skipped)"
        )
        click.echo(f"  would feature now: {count} new article{'' if count == 1 else 's'}{enough}")
        for title in status.would_feature:
            click.echo(f"    - {printable(title)}")


@recurring.command("show")
@click.argument("name")
@click.pass_context
def recurring_show(ctx: click.Context, name: str) -> None:
    """One series: its settings, next time and its latest occurrences."""
    from newsletter.recurring.manage import series_status

    (status,) = series_status(current_workspace(ctx), name)
    series = status.series
    for key, value in series.model_dump().items():
        click.echo(f"{key}: {value}")
    click.echo(f"paused: {'yes' if status.paused else 'no'}")
    skipped = "  (the time before it is skipped)" if status.next_skipped else ""
    click.echo(f"next: {_when(status.zone, status.next_at)}{skipped}")
    click.echo(
        "would feature now: " + (", ".join(map(printable, status.would_feature)) or "nothing new")
    )
    for item in status.recent:
        number = f"#{item.number}" if item.number else "-"
        when = _when(status.zone, item.due_at)
        click.echo(f"  {when}  {item.state:<9} {number:>4}  {printable(item.note)}")


@recurring.command("pause")
@click.argument("name")
@click.pass_context
def recurring_pause(ctx: click.Context, name: str) -> None:
    """Stop series NAME: its times pass as skipped until resume."""
    from newsletter.recurring.manage import pause_series

    changed = pause_series(current_workspace(ctx), name, True)
    click.echo(f"paused {name}" if changed else f"{name} was paused already")


@recurring.command("resume")
@click.argument("name")
@click.pass_context
def recurring_resume(ctx: click.Context, name: str) -> None:
    """Start series NAME again from its next time."""
    from newsletter.recurring.manage import pause_series

    changed = pause_series(current_workspace(ctx), name, False)
    click.echo(f"resumed {name}" if changed else f"{name} was not paused")


@recurring.command("skip")
@click.argument("name")
@click.pass_context
def recurring_skip(ctx: click.Context, name: str) -> None:
    """Skip the next time of series NAME (it uses no number)."""
    from newsletter.recurring.manage import skip_next

    due_at = skip_next(current_workspace(ctx), name)
    click.echo(f"skipped {name} at {due_at:%Y-%m-%d %H:%M} UTC")


@click.command()
@click.argument("issue_dir", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def approve(ctx: click.Context, issue_dir: Path) -> None:
    """Let ISSUE_DIR, composed by a series with approval = "required", go out at its time."""
    from newsletter.recurring.manage import approve_issue

    found = approve_issue(current_workspace(ctx), issue_dir)
    when = f"{found.due_at:%Y-%m-%d %H:%M} UTC"
    click.echo(f"approved #{found.number} of {found.series}: it goes out at {when}")


COMMANDS: tuple[click.Command, ...] = (recurring, approve)
