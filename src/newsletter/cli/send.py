"""Sending: ``send`` (to a list, a test, a dry run or at a time), ``schedule list|cancel``
and ``run-due``."""

from __future__ import annotations

import contextlib
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from newsletter.cli.progress import send_progress_bar
from newsletter.cli.state import counted, current_workspace
from newsletter.errors import NewsletterError
from newsletter.textsafe import printable

if TYPE_CHECKING:
    from newsletter.deliver import SendPlan, SendReport
    from newsletter.workspace import Workspace

# Failed recipients listed one per line after a send; the rest are only counted.
_FAILURES_SHOWN = 10


def _parse_rate(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    from newsletter.deliver import parse_rate

    if value is None:
        return None
    try:
        return parse_rate(value)
    except NewsletterError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.argument("issue_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--latest",
    is_flag=True,
    help="Send the newest issue (by its date) not yet sent to the list.",
)
@click.option("--list", "list_name", help="List to send to (default: send.list).")
@click.option(
    "--test",
    "test_addresses",
    multiple=True,
    metavar="ADDRESS",
    help="Send a marked test to ADDRESS (repeat, or separate with commas); records nothing.",
)
@click.option(
    "--dry-run",
    "dry_run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="OUTDIR",
    help="Write the exact messages as .eml files into OUTDIR; no server is contacted.",
)
@click.option(
    "--connections",
    type=click.IntRange(1, 64),
    help="SMTP connections at once, for this sender (default: send.connections).",
)
@click.option(
    "--rate",
    callback=_parse_rate,
    metavar="N/s",
    help="At most N messages per second (or N/m, N/h) from this sender.",
)
@click.option(
    "--campaign-rate",
    callback=_parse_rate,
    metavar="N/s",
    help="At most N messages per second for the whole campaign, shared by every "
    "sender running it (default: send.campaign_rate).",
)
@click.option(
    "--retry-failed", is_flag=True, help="Try the failed recipients of a finished send again."
)
@click.option(
    "--retry-unknown",
    is_flag=True,
    help="Resend the messages of a finished send that got no reply after their data; "
    "some may have arrived, with the same Message-ID.",
)
@click.option(
    "--at",
    "at",
    metavar="WHEN",
    help='Schedule instead: --at "YYYY-MM-DD HH:MM [Area/City]", "tomorrow 08:00" or "+2h".',
)
@click.option("--yes", is_flag=True, help="Do not ask before sending.")
@click.pass_context
def send(
    ctx: click.Context,
    issue_dir: Path | None,
    latest: bool,
    list_name: str | None,
    test_addresses: tuple[str, ...],
    dry_run_dir: Path | None,
    connections: int | None,
    rate: float | None,
    campaign_rate: float | None,
    retry_failed: bool,
    retry_unknown: bool,
    at: str | None,
    yes: bool,
) -> None:
    """Send ISSUE_DIR to a list, each subscriber once; a rerun resumes where it stopped.

    Without NEWSLETTER_SMTP_URL the messages go to the embedded local SMTP server and
    land in outbox/ as .eml files (kept until you delete them). Ctrl-C or SIGTERM
    finishes the messages in flight and stops; run the same command to resume. The
    same command started on another machine (sharing a PostgreSQL database) while a
    send runs joins it: each sender sends its own share.
    """
    from newsletter.deliver import latest_issue, send_test

    workspace = current_workspace(ctx)
    _check_send_arguments(issue_dir, latest, test_addresses, dry_run_dir, at)
    if at is not None:  # a bad time is refused before anything else is said
        from newsletter.schedule.when import parse_when

        parse_when(at, workspace.config.publication.timezone)
    if issue_dir is None:
        issue_dir = latest_issue(workspace, list_name)
        click.echo(f"issue: {issue_dir}")
    if test_addresses:
        _echo_send_report(send_test(workspace, issue_dir, test_addresses, list_name=list_name))
    elif dry_run_dir is not None:
        _write_dry_run(workspace, issue_dir, dry_run_dir, list_name)
    elif at is not None:
        _schedule(workspace, issue_dir, at, list_name)
    else:
        run = _ListRun(list_name, connections, rate, campaign_rate, retry_failed, retry_unknown)
        _send_to_list(ctx, workspace, issue_dir, run, yes=yes)


@dataclass(frozen=True)
class _ListRun:
    """The options of a send to a list, as given (None: the workspace's setting)."""

    list_name: str | None
    connections: int | None
    rate: float | None
    campaign_rate: float | None
    retry_failed: bool
    retry_unknown: bool


def _check_send_arguments(
    issue_dir: Path | None,
    latest: bool,
    test_addresses: tuple[str, ...],
    dry_run_dir: Path | None,
    at: str | None,
) -> None:
    """Raise UsageError unless exactly one issue and at most one mode were given."""
    if sum(map(bool, (test_addresses, dry_run_dir, at))) > 1:
        raise click.UsageError("use only one of --test, --dry-run and --at")
    if latest == (issue_dir is not None):
        raise click.UsageError("give ISSUE_DIR or --latest (one of them)")


def _write_dry_run(
    workspace: Workspace, issue_dir: Path, outdir: Path, list_name: str | None
) -> None:
    """``send --dry-run``: write the messages as .eml files and say how many."""
    from newsletter.deliver import dry_run

    dry = dry_run(workspace, issue_dir, outdir, list_name)
    for warning in dry.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(f"wrote {counted(dry.count, 'message')} ({dry.bytes / 1e6:.1f} MB) to {dry.outdir}")


def _schedule(workspace: Workspace, issue_dir: Path, at: str, list_name: str | None) -> None:
    """``send --at``: record a scheduled send and describe it."""
    from newsletter.schedule.scheduled import describe, schedule_send

    scheduled = schedule_send(workspace, issue_dir, at, list_name)
    click.echo("scheduled " + describe(scheduled, workspace.config.publication.timezone))


def _send_to_list(
    ctx: click.Context, workspace: Workspace, issue_dir: Path, run: _ListRun, *, yes: bool
) -> None:
    """Plan the send, ask (unless ``yes``), send with a progress bar, print the report;
    exit 1 when the user declines, 130 when the send was interrupted."""
    from newsletter.deliver import plan_send, send_issue
    from newsletter.deliver.reports import WAITING

    plan = plan_send(
        workspace,
        issue_dir,
        run.list_name,
        retry_failed=run.retry_failed,
        retry_unknown=run.retry_unknown,
    )
    if plan.state == WAITING:
        when = f"{plan.next_attempt_at:%Y-%m-%d %H:%M} UTC" if plan.next_attempt_at else "later"
        click.echo(f"nothing to send now: {plan.deferred} deferred, next attempt from {when}")
        return
    if plan.recipients and not yes and not _confirmed(plan):
        click.echo("not sent")
        ctx.exit(1)
    with contextlib.ExitStack() as stack:
        on_progress = None
        if sys.stderr.isatty() and plan.recipients:
            on_progress = stack.enter_context(send_progress_bar(plan.recipients))
        report = send_issue(
            workspace,
            issue_dir,
            list_name=run.list_name,
            connections=run.connections,
            rate=run.rate,
            campaign_rate=run.campaign_rate,
            retry_failed=run.retry_failed,
            retry_unknown=run.retry_unknown,
            progress=on_progress,
            handle_sigint=True,
        )
    _echo_send_report(report)
    if report.interrupted:
        click.echo(f"interrupted; to resume, run: {_resume_command(issue_dir, run)}", err=True)
        ctx.exit(130)


def _confirmed(plan: SendPlan) -> bool:
    """Ask whether to send ``plan`` -> the answer; refuse to ask without a terminal."""
    from newsletter.deliver.reports import RESUME

    verb = "Resume sending" if plan.state == RESUME else "Send"
    if plan.running:
        verb = "Join the running send of"
    question = (
        f'{verb} "{plan.subject}" to {plan.recipients} recipients on list '
        f"{plan.list_name!r} through {plan.target}?"
    )
    if not sys.stdin.isatty():
        raise NewsletterError(
            f"not asking on a non-interactive input: {question}",
            hint="pass --yes to send without asking",
        )
    return click.confirm(question)


def _resume_command(issue_dir: Path, run: _ListRun) -> str:
    """The command line that resumes an interrupted send with the same options."""
    again = ["newsletter", "send", shlex.quote(str(issue_dir))]
    for flag, value in (("--list", run.list_name), ("--connections", run.connections)):
        if value is not None:
            again += [flag, shlex.quote(str(value))]
    if run.rate is not None:
        again += ["--rate", f"{run.rate:g}/s"]
    if run.campaign_rate is not None:
        again += ["--campaign-rate", f"{run.campaign_rate:g}/s"]
    return " ".join(again)


def _echo_send_report(report: SendReport) -> None:
    """Print a send's warnings, its first failures, its summary and where it went."""
    for warning in report.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    shown = report.failures[:_FAILURES_SHOWN]
    for address, reply in shown:
        click.echo(f"failed: {printable(address)}: {printable(reply)}", err=True)
    if report.failures_total > len(shown):
        click.echo(f"... and {report.failures_total - len(shown)} more failed", err=True)
    click.echo(report.summary())
    if report.target:
        # one wording for both targets: the prompt named the same
        click.echo(f"delivered through {report.target}")


@click.group()
def schedule() -> None:
    """List and cancel scheduled sends (schedule one with: send ISSUE_DIR --at WHEN)."""


@schedule.command("list")
@click.option("--waiting", is_flag=True, help="Only sends that have not finished.")
@click.pass_context
def schedule_list(ctx: click.Context, waiting: bool) -> None:
    """Show scheduled sends: id, state, time, issue, list, outcome (tab-separated)."""
    from newsletter.schedule.scheduled import describe, list_scheduled

    workspace = current_workspace(ctx)
    found = list_scheduled(workspace, include_finished=not waiting)
    for item in found:
        click.echo(describe(item, workspace.config.publication.timezone))
    if not found:
        click.echo("nothing scheduled", err=True)


@schedule.command("cancel")
@click.argument("schedule_id", type=int, metavar="ID")
@click.pass_context
def schedule_cancel(ctx: click.Context, schedule_id: int) -> None:
    """Cancel scheduled send ID before it starts."""
    from newsletter.schedule.scheduled import cancel_scheduled, describe

    workspace = current_workspace(ctx)
    cancelled = cancel_scheduled(workspace, schedule_id)
    click.echo(describe(cancelled, workspace.config.publication.timezone))


@click.command("run-due")
@click.pass_context
def run_due_command(ctx: click.Context) -> None:
    """Start the scheduled sends and recurring series that are due, once, and exit (for
    cron instead of serve).

    Exits 1 when a send or a series step failed or was missed, so cron reports it.
    """
    from newsletter.schedule.due import run_due

    report = run_due(current_workspace(ctx))
    for line in report.lines():
        click.echo(line)
    if not report.acted:
        click.echo("nothing due", err=True)
    if report.failed or report.missed or report.recurring_problems:
        ctx.exit(1)


COMMANDS: tuple[click.Command, ...] = (send, schedule, run_due_command)
