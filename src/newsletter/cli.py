"""The command line: declarations only.

Each command parses its options, loads the workspace and calls one function of
the core; it prints what that function returns. ``main`` catches
``NewsletterError`` once and turns it into one line on stderr and exit 1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO, cast

import click

from newsletter import __version__
from newsletter.errors import NewsletterError
from newsletter.textsafe import TerminalWriter, json_for_terminal, printable
from newsletter.workspace import Workspace, load_workspace


class _State:
    def __init__(self, workspace_path: Path | None) -> None:
        self.workspace_path = workspace_path
        self._workspace: Workspace | None = None

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            self._workspace = load_workspace(self.workspace_path)
        return self._workspace


def _workspace(ctx: click.Context) -> Workspace:
    return ctx.find_object(_State).workspace  # type: ignore[union-attr]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="newsletter")
@click.option(
    "-w",
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="NEWSLETTER_WORKSPACE",
    help="Workspace folder (default: the nearest folder with newsletter.toml).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, workspace: Path | None, verbose: int) -> None:
    """Compose, preview and send a newsletter from a workspace."""
    level = logging.WARNING - 10 * min(verbose, 2)
    # plain runs show library warnings like the CLI's own "warning: ..." lines; -v adds the source
    shape = "%(levelname)s %(name)s: %(message)s" if verbose else "%(levelname)s: %(message)s"
    handler = logging.StreamHandler()
    handler.setFormatter(_LowerLevelFormatter(shape))
    if not verbose:
        handler.addFilter(_not_about_an_interrupt)
        handler.addFilter(_warning_or_notice)
        # a library marks news the user should see anyway with extra={"notice": True}
        logging.getLogger("newsletter").setLevel(logging.INFO)
    logging.basicConfig(level=level, handlers=[handler])
    # alembic announces every migration step at INFO; only -vv wants that
    logging.getLogger("alembic").setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)
    ctx.obj = _State(workspace)


class _LowerLevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "notice", False) and record.levelno < logging.WARNING:
            return record.getMessage()
        record.levelname = record.levelname.lower()
        return super().format(record)


# Loggers whose INFO lines a plain run shows too (serve adds its request and schedule logs).
_INFO_SHOWN: set[str] = set()


def _warning_or_notice(record: logging.LogRecord) -> bool:
    """On a plain run: warnings and errors, the INFO records marked as notices, and INFO
    from the loggers in ``_INFO_SHOWN`` (and their children)."""
    if record.levelno >= logging.WARNING or getattr(record, "notice", False):
        return True
    return record.levelno >= logging.INFO and any(
        record.name == name or record.name.startswith(name + ".") for name in _INFO_SHOWN
    )


def _not_about_an_interrupt(record: logging.LogRecord) -> bool:
    """Drop what a library logs about the user's own second Ctrl-C (say, a connection it
    could not close because the interrupt landed there): the CLI says "aborted"."""
    return not (record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt))


# --- init ---------------------------------------------------------------------------------


@cli.command()
@click.argument("folder", required=False, default=".", type=click.Path(path_type=Path))
def init(folder: Path) -> None:
    """Set up a new workspace in FOLDER (default: the current folder)."""
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
        "add people: newsletter subscribers import subscribers/subscribers.csv",
        "look at the result: newsletter send --latest --dry-run outbox/dry-run",
    ]
    click.echo("next:\n" + "\n".join(f"  {step}" for step in steps))


# --- compose, render, extract -------------------------------------------------------------


@cli.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--subject", help="Subject line (default: the publication name and date).")
@click.option("--intro", default="", help="A short editor's note above the teasers.")
@click.option("--preheader", default="", help="Inbox preview text (default: from the teasers).")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Issue folder to write."
)
@click.option("--skip-bad", is_flag=True, help="Compose from the good sources, list the bad ones.")
@click.pass_context
def compose(
    ctx: click.Context,
    sources: tuple[str, ...],
    subject: str | None,
    intro: str,
    preheader: str,
    out: Path | None,
    skip_bad: bool,
) -> None:
    """Extract SOURCES (files, folders, feeds, URLs) into a new issue folder."""
    from newsletter.issue import compose_issue

    result = compose_issue(
        _workspace(ctx),
        list(sources),
        subject=subject,
        intro=intro,
        preheader=preheader,
        out=out,
        skip_bad=skip_bad,
    )
    for source, reason in result.skipped:
        click.echo(f"skipped {printable(source)}: {printable(reason)}", err=True)
    for warning in result.warnings:
        click.secho(f"warning: {printable(warning)}", fg="yellow", err=True)
    count = len(result.issue.teasers)
    click.echo(f"composed {count} teaser{'' if count == 1 else 's'} into {result.folder}")
    click.echo(f"open {result.folder / 'issue.html'} or run: newsletter preview {result.folder}")


@cli.command()
@click.argument("issue_dir", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def render(ctx: click.Context, issue_dir: Path) -> None:
    """Re-render ISSUE_DIR after editing issue.json or templates (no re-summarising)."""
    from newsletter.issue import render_issue_folder

    result = render_issue_folder(_workspace(ctx), issue_dir)
    for warning in result.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(f"rendered {result.folder / 'issue.html'} ({result.html_bytes / 1024:.1f} KB)")


@cli.command()
@click.argument("source")
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON: an object, or an array for a feed."
)
@click.pass_context
def extract(ctx: click.Context, source: str, as_json: bool) -> None:
    """Show what SOURCE yields: title, byline, image, text and teaser."""
    from newsletter.issue import extract_source

    articles: list[dict[str, Any]] = extract_source(_workspace(ctx), source)
    if as_json:
        payload: Any = articles[0] if len(articles) == 1 else articles
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    for item in articles:
        # every value here comes from the article: no control characters reach the terminal
        shown = {key: printable(str(value), keep_newlines=True) for key, value in item.items()}
        click.secho(printable(shown["title"]), bold=True)
        for key in ("url", "byline", "published", "image"):
            if item.get(key):
                click.echo(f"{key}: {printable(shown[key])}")
        click.echo(f"\nteaser ({len(item['summary'].split())} words):\n{shown['summary']}\n")
        click.echo(f"text ({len(item['text'].split())} words):\n{shown['text']}\n")


# --- theme ----------------------------------------------------------------------------------


@cli.group()
def theme() -> None:
    """The packaged theme: list its files, copy one into templates/ to override it."""


@theme.command("list")
@click.pass_context
def theme_list(ctx: click.Context) -> None:
    """List the theme's files; those templates/ overrides are marked."""
    from newsletter.theme import theme_files

    for item in theme_files(_workspace(ctx)):
        click.echo(f"{item.name}{'  (overridden in templates/)' if item.overridden else ''}")


@theme.command("copy")
@click.argument("name")
@click.option("--force", is_flag=True, help="Replace the workspace's copy if it exists.")
@click.pass_context
def theme_copy(ctx: click.Context, name: str, force: bool) -> None:
    """Copy the theme file NAME into templates/ for editing."""
    from newsletter.theme import copy_theme_file

    click.echo(f"copied to {copy_theme_file(_workspace(ctx), name, force=force)}")


# --- preview --------------------------------------------------------------------------------


@cli.command()
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
        _workspace(ctx),
        issue_dir,
        port=port,
        open_browser=not no_open,
        as_address=as_address,
        on_ready=lambda url: click.echo(f"previewing {issue_dir} at {url} (Ctrl-C to stop)"),
    )
    click.echo(f"preview stopped ({result.renders} render{'' if result.renders == 1 else 's'})")


# --- end preview ----------------------------------------------------------------------------


# --- send -----------------------------------------------------------------------------------


def _parse_rate(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    from newsletter.deliver import parse_rate

    if value is None:
        return None
    try:
        return parse_rate(value)
    except NewsletterError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command()
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
    help="SMTP connections at once (default: send.connections).",
)
@click.option(
    "--rate",
    callback=_parse_rate,
    metavar="N/s",
    help="At most N messages per second (or N/m, N/h).",
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
    retry_failed: bool,
    retry_unknown: bool,
    at: str | None,
    yes: bool,
) -> None:
    """Send ISSUE_DIR to a list, each subscriber once; a rerun resumes where it stopped.

    Without NEWSLETTER_SMTP_URL the messages go to the embedded local SMTP server and
    land in outbox/ as .eml files (kept until you delete them). Ctrl-C or SIGTERM
    finishes the messages in flight and stops; run the same command to resume.
    """
    from newsletter import deliver

    workspace = _workspace(ctx)
    if sum(map(bool, (test_addresses, dry_run_dir, at))) > 1:
        raise click.UsageError("use only one of --test, --dry-run and --at")
    if latest == (issue_dir is not None):
        raise click.UsageError("give ISSUE_DIR or --latest (one of them)")
    if issue_dir is None:
        issue_dir = deliver.latest_issue(workspace, list_name)
        click.echo(f"issue: {issue_dir}")
    if test_addresses:
        report = deliver.send_test(workspace, issue_dir, test_addresses, list_name=list_name)
        _echo_send_report(report)
        return
    if dry_run_dir is not None:
        dry = deliver.dry_run(workspace, issue_dir, dry_run_dir, list_name)
        for warning in dry.warnings:
            click.secho(f"warning: {warning}", fg="yellow", err=True)
        click.echo(f"wrote {dry.count} messages ({dry.bytes / 1e6:.1f} MB) to {dry.outdir}")
        return
    if at is not None:
        from newsletter.schedule import describe, schedule_send

        scheduled = schedule_send(workspace, issue_dir, at, list_name)
        click.echo("scheduled " + describe(scheduled, workspace.config.publication.timezone))
        return
    plan = deliver.plan_send(
        workspace, issue_dir, list_name, retry_failed=retry_failed, retry_unknown=retry_unknown
    )
    if not plan.recipients and plan.state not in ("finished", "new"):
        when = f"{plan.next_attempt_at:%Y-%m-%d %H:%M} UTC" if plan.next_attempt_at else "later"
        click.echo(f"nothing to send now: {plan.deferred} deferred, next attempt from {when}")
        return
    if plan.recipients:
        verb = "Resume sending" if plan.state == "resume" else "Send"
        question = (
            f'{verb} "{plan.subject}" to {plan.recipients} recipients on list '
            f"{plan.list_name!r} through {plan.target}?"
        )
        if not yes:
            if not sys.stdin.isatty():
                raise NewsletterError(
                    f"not asking on a non-interactive input: {question}",
                    hint="pass --yes to send without asking",
                )
            if not click.confirm(question):
                click.echo("not sent")
                ctx.exit(1)
    with contextlib.ExitStack() as stack:
        on_progress = None
        if sys.stderr.isatty() and plan.recipients:
            on_progress = stack.enter_context(_send_progress_bar(plan.recipients))
        report = deliver.send_issue(
            workspace,
            issue_dir,
            list_name=list_name,
            connections=connections,
            rate=rate,
            retry_failed=retry_failed,
            retry_unknown=retry_unknown,
            progress=on_progress,
            handle_sigint=True,
        )
    _echo_send_report(report)
    if report.interrupted:
        again = ["newsletter", "send", shlex.quote(str(issue_dir))]
        for flag, value in (("--list", list_name), ("--connections", connections)):
            if value is not None:
                again += [flag, shlex.quote(str(value))]
        if rate is not None:
            again += ["--rate", f"{rate:g}/s"]
        click.echo(f"interrupted; to resume, run: {' '.join(again)}", err=True)
        ctx.exit(130)


_FAILURES_SHOWN = 10


def _echo_send_report(report: Any) -> None:
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


class _BarStream:
    """stderr as the progress bar writes to it: remembers whether the bar's line is open
    (the bar redraws it after a carriage return and never ends it until it closes)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.line_open = False

    def write(self, text: str) -> int:
        if text:
            self.line_open = not text.endswith("\n")
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _EndBarLine(logging.Filter):
    """Ends the bar's open line before a log record (the Ctrl-C warning) is written, so
    the record starts a line of its own instead of trailing the bar's rate."""

    def __init__(self, bar_stream: _BarStream) -> None:
        super().__init__()
        self.bar_stream = bar_stream

    def filter(self, record: logging.LogRecord) -> bool:
        if self.bar_stream.line_open:
            self.bar_stream.write("\n")
            self.bar_stream.flush()
        return True


@contextlib.contextmanager
def _send_progress_bar(length: int) -> Iterator[Callable[[Any], None]]:
    """A progress bar on stderr for ``length`` rows -> the send's progress callback.

    While it is shown, the log handlers writing to stderr end its line before each record.
    """
    stream = _BarStream(sys.stderr)
    line_end = _EndBarLine(stream)
    handlers = [
        handler
        for handler in logging.getLogger().handlers
        if getattr(handler, "stream", None) is sys.stderr
    ]
    for handler in handlers:
        handler.addFilter(line_end)
    # Any: the bar's items are SendProgress values, not the ints click's stubs expect
    bar: Any = click.progressbar(
        length=length,
        label="sending",
        file=cast(TextIO, stream),
        show_eta=True,
        item_show_func=lambda p: f"{p.rate:.0f} msg/s" if p else "",
    )
    try:
        with bar:
            seen = [0]

            def on_progress(progress: Any) -> None:
                bar.update(progress.done - seen[0], progress)
                seen[0] = progress.done

            yield on_progress
    finally:
        for handler in handlers:
            handler.removeFilter(line_end)


# --- end send -------------------------------------------------------------------------------


# --- subscribers (import, export, add, remove, list, count, show, erase; unsubscribe) -------

_STATUSES = ("active", "pending", "unsubscribed", "bounced", "complained")


@cli.group()
def subscribers() -> None:
    """Import, export, add, remove, list, count, show and erase subscribers."""


@subscribers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--list", "list_name", help="Put every row on this list (default: send.list).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("auto", "generic", "mailchimp", "listmonk", "substack")),
    default="auto",
    show_default=True,
    help="Whose export FILE is (auto: from the header).",
)
@click.option("--encoding", help="Text encoding of FILE (default: detected).")
@click.option(
    "--resubscribe",
    metavar="CONSENT",
    help="Let people who left back in; describe how they consented again.",
)
@click.pass_context
def subscribers_import(
    ctx: click.Context,
    file: Path,
    list_name: str | None,
    fmt: str,
    encoding: str | None,
    resubscribe: str | None,
) -> None:
    """Import subscribers from a CSV FILE (generic, Mailchimp, listmonk, Substack)."""
    from newsletter.people import import_file
    from newsletter.store import open_store_for

    workspace = _workspace(ctx)
    with open_store_for(workspace) as store:
        report = import_file(
            store,
            file,
            list_name=list_name,
            default_list=workspace.config.send.list,
            fmt=fmt,
            encoding=encoding,
            resubscribe=resubscribe,
        )
    for line, reason in report.invalid:
        click.echo(f"{file}:{line}: {printable(reason)}", err=True)
    click.echo(report.summary())
    if report.invalid:
        # the valid rows are in; a non-zero exit still tells scripts the file needs fixing
        click.echo(
            "fix the rows above and import the file again (imported rows stay as they are)",
            err=True,
        )
        ctx.exit(1)


@subscribers.command("export")
@click.argument(
    "file", default="-", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path)
)
@click.option("--list", "list_name", help="Only members of this list.")
@click.option("--status", type=click.Choice(_STATUSES), help="Only this (effective) status.")
@click.pass_context
def subscribers_export(
    ctx: click.Context, file: Path, list_name: str | None, status: str | None
) -> None:
    """Export subscribers as CSV to FILE (default: standard output); re-importable as is."""
    from newsletter.people import export_file, write_export
    from newsletter.store import open_store_for

    with open_store_for(_workspace(ctx)) as store:
        if str(file) == "-":
            # a terminal gets the rows without control characters; a pipe gets them exact
            out = cast(TextIO, TerminalWriter(sys.stdout)) if sys.stdout.isatty() else sys.stdout
            count = write_export(store, out, list_name=list_name, status=status)
        else:
            count = export_file(store, file, list_name=list_name, status=status)
    click.echo(f"exported {count} subscribers", err=True)


@subscribers.command("add")
@click.argument("address")
@click.option("--name", default="", help="The subscriber's name.")
@click.option("--list", "list_name", help="List to add to (default: send.list).")
@click.option("--attr", "attrs", multiple=True, metavar="KEY=VALUE", help="An attribute.")
@click.option(
    "--resubscribe",
    metavar="CONSENT",
    help="Add even if they left before; describe how they consented again.",
)
@click.pass_context
def subscribers_add(
    ctx: click.Context,
    address: str,
    name: str,
    list_name: str | None,
    attrs: tuple[str, ...],
    resubscribe: str | None,
) -> None:
    """Subscribe ADDRESS (consent recorded as given on the command line)."""
    from newsletter.people import add_subscriber, parse_attributes
    from newsletter.store import open_store_for

    workspace = _workspace(ctx)
    with open_store_for(workspace) as store:
        message = add_subscriber(
            store,
            address,
            list_name=list_name or workspace.config.send.list,
            name=name,
            attributes=parse_attributes(attrs),
            resubscribe=resubscribe,
        )
    click.echo(message)


@subscribers.command("remove")
@click.argument("address")
@click.option("--list", "list_name", help="List to take ADDRESS off (default: send.list).")
@click.pass_context
def subscribers_remove(ctx: click.Context, address: str, list_name: str | None) -> None:
    """Take ADDRESS off a list; the record stays, and no import puts it back."""
    from newsletter.people import remove_subscriber
    from newsletter.store import open_store_for

    workspace = _workspace(ctx)
    with open_store_for(workspace) as store:
        message = remove_subscriber(
            store, address, list_name=list_name or workspace.config.send.list
        )
    click.echo(message)


@subscribers.command("list")
@click.option("--list", "list_name", help="Only members of this list.")
@click.option("--status", type=click.Choice(_STATUSES), help="Only this (effective) status.")
@click.option("--limit", type=click.IntRange(min=0), help="Show at most this many.")
@click.pass_context
def subscribers_list(
    ctx: click.Context, list_name: str | None, status: str | None, limit: int | None
) -> None:
    """Show subscribers: address, status, lists, name (tab-separated)."""
    from newsletter.people import listing
    from newsletter.store import open_store_for

    with open_store_for(_workspace(ctx)) as store:
        for line in listing(store, list_name=list_name, status=status, limit=limit):
            click.echo(line)


@subscribers.command("count")
@click.option("--list", "list_name", help="Only members of this list.")
@click.option("--status", type=click.Choice(_STATUSES), help="Only this (effective) status.")
@click.pass_context
def subscribers_count(ctx: click.Context, list_name: str | None, status: str | None) -> None:
    """Print how many subscribers there are."""
    from newsletter.store import open_store_for

    with open_store_for(_workspace(ctx)) as store:
        click.echo(store.count(list_name=list_name, status=status))


@subscribers.command("show")
@click.argument("address")
@click.pass_context
def subscribers_show(ctx: click.Context, address: str) -> None:
    """Print everything held about ADDRESS as JSON (for a data-subject request)."""
    from newsletter.people import describe_address
    from newsletter.store import open_store_for

    with open_store_for(_workspace(ctx)) as store:
        data = describe_address(store, address)
    click.echo(json_for_terminal(json.dumps(data, ensure_ascii=False, indent=2)))


@subscribers.command("erase")
@click.argument("address")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def subscribers_erase(ctx: click.Context, address: str, yes: bool) -> None:
    """Erase ADDRESS's personal data for good; only a hash stays, to keep it blocked."""
    from newsletter.people import erase_address
    from newsletter.store import open_store_for

    if not yes:
        click.confirm(f"Erase all data about {address}? This cannot be undone", abort=True)
    with open_store_for(_workspace(ctx)) as store:
        message = erase_address(store, address)
    click.echo(message)


@cli.command()
@click.argument("address")
@click.option("--list", "list_name", help="Only from this list (default: from everything).")
@click.pass_context
def unsubscribe(ctx: click.Context, address: str, list_name: str | None) -> None:
    """Unsubscribe ADDRESS from one list, or from everything (then no import adds it back)."""
    from newsletter.people import unsubscribe_address
    from newsletter.store import open_store_for

    with open_store_for(_workspace(ctx)) as store:
        message = unsubscribe_address(store, address, list_name=list_name)
    click.echo(message)


# --- end subscribers ------------------------------------------------------------------------


# --- bounces --------------------------------------------------------------------------------


@cli.command()
# readable=False: an unreadable file is the core's one-line warning, not a usage error
# that would leave every other path unprocessed
@click.argument("paths", nargs=-1, required=True, type=click.Path(readable=False, path_type=Path))
@click.pass_context
def bounces(ctx: click.Context, paths: tuple[Path, ...]) -> None:
    """Process bounces and complaints in PATHS (.eml files, Maildir folders, mbox files).

    Hard bounces and spam complaints suppress the subscriber at once, soft bounces
    after bounces.soft_limit within bounces.soft_window_days. Safe to run again.
    Exits 1 when something could not be read or classified (the rest is processed).
    """
    from newsletter.bounces import process_paths

    report = process_paths(_workspace(ctx), list(paths))
    for what, why in report.unreadable:
        click.secho(
            f"warning: cannot read {printable(what)}: {printable(why)}", fg="yellow", err=True
        )
    for what, why in report.unclassified:
        click.secho(
            f"warning: could not classify {printable(what)}: {printable(why)}",
            fg="yellow",
            err=True,
        )
    click.echo(report.summary())
    if report.incomplete:
        ctx.exit(1)


# --- end bounces ----------------------------------------------------------------------------


# --- serve, schedule, run-due ---------------------------------------------------------------


@cli.command()
@click.option("--host", help="Address to listen on (default: serve.host).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="Port to listen on (default: serve.port; 0 picks a free one).",
)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Answer unsubscribe, subscribe and confirm links and run scheduled sends (Ctrl-C stops)."""
    from newsletter.web.server import run_server

    # a long-running service shows what it does: a line per request and per scheduled send
    for name in ("newsletter.web", "newsletter.schedule"):
        _INFO_SHOWN.add(name)
        if not logging.getLogger(name).isEnabledFor(logging.INFO):
            logging.getLogger(name).setLevel(logging.INFO)
    workspace = _workspace(ctx)
    run_server(
        workspace,
        host=host,
        port=port,
        on_ready=lambda url: click.echo(
            f"serving the links of {workspace.base_url} on {url} (Ctrl-C to stop)"
        ),
    )
    click.echo("serve stopped")


@cli.group()
def schedule() -> None:
    """List and cancel scheduled sends (schedule one with: send ISSUE_DIR --at WHEN)."""


@schedule.command("list")
@click.option("--waiting", is_flag=True, help="Only sends that have not finished.")
@click.pass_context
def schedule_list(ctx: click.Context, waiting: bool) -> None:
    """Show scheduled sends: id, state, time, issue, list, outcome (tab-separated)."""
    from newsletter.schedule import describe, list_scheduled

    workspace = _workspace(ctx)
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
    from newsletter.schedule import cancel_scheduled, describe

    workspace = _workspace(ctx)
    cancelled = cancel_scheduled(workspace, schedule_id)
    click.echo(describe(cancelled, workspace.config.publication.timezone))


@cli.command("run-due")
@click.pass_context
def run_due_command(ctx: click.Context) -> None:
    """Start the scheduled sends that are due, once, and exit (for cron instead of serve).

    Exits 1 when a send failed or was missed, so cron reports it.
    """
    from newsletter.schedule import run_due

    report = run_due(_workspace(ctx))
    for line in report.lines():
        click.echo(line)
    if not report.acted:
        click.echo("nothing due", err=True)
    if report.failed or report.missed:
        ctx.exit(1)


# --- end serve ------------------------------------------------------------------------------


def main() -> None:
    """Entry point: run the CLI; a NewsletterError becomes one line and exit 1."""
    try:
        # standalone_mode=False returns ctx.exit()'s code instead of exiting: pass it on
        code = cli.main(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except NewsletterError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
