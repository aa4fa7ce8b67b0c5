"""The subscriber verbs: ``subscribers import|export|add|remove|list|count|show|erase`` and
``unsubscribe``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO, cast

import click

from newsletter.cli.state import current_workspace
from newsletter.textsafe import TerminalWriter, json_for_terminal, printable

# The effective statuses that --status filters on.
_STATUSES = ("active", "pending", "unsubscribed", "bounced", "complained")


@click.group()
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
    from newsletter.audience.importing import import_file
    from newsletter.store import open_store_for

    workspace = current_workspace(ctx)
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
    from newsletter.audience.exporting import export_file, write_export
    from newsletter.store import open_store_for

    with open_store_for(current_workspace(ctx)) as store:
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
    """Subscribe ADDRESS, written as you@example.org or "Your Name <you@example.org>"
    (the name is used unless --name gives one); consent is recorded as given on the
    command line."""
    from newsletter.audience.manage import add_subscriber, parse_attributes
    from newsletter.store import open_store_for

    workspace = current_workspace(ctx)
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
    from newsletter.audience.manage import remove_subscriber
    from newsletter.store import open_store_for

    workspace = current_workspace(ctx)
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
    from newsletter.audience.manage import listing
    from newsletter.store import open_store_for

    with open_store_for(current_workspace(ctx)) as store:
        for line in listing(store, list_name=list_name, status=status, limit=limit):
            click.echo(line)


@subscribers.command("count")
@click.option("--list", "list_name", help="Only members of this list.")
@click.option("--status", type=click.Choice(_STATUSES), help="Only this (effective) status.")
@click.pass_context
def subscribers_count(ctx: click.Context, list_name: str | None, status: str | None) -> None:
    """Print how many subscribers there are."""
    from newsletter.store import open_store_for

    with open_store_for(current_workspace(ctx)) as store:
        click.echo(store.count(list_name=list_name, status=status))


@subscribers.command("show")
@click.argument("address")
@click.pass_context
def subscribers_show(ctx: click.Context, address: str) -> None:
    """Print everything held about ADDRESS as JSON (for a data-subject request)."""
    from newsletter.audience.manage import describe_address
    from newsletter.store import open_store_for

    with open_store_for(current_workspace(ctx)) as store:
        data = describe_address(store, address)
    click.echo(json_for_terminal(json.dumps(data, ensure_ascii=False, indent=2)))


@subscribers.command("erase")
@click.argument("address")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def subscribers_erase(ctx: click.Context, address: str, yes: bool) -> None:
    """Erase ADDRESS's personal data for good; only a hash stays, to keep it blocked."""
    from newsletter.audience.manage import erase_address
    from newsletter.store import open_store_for

    if not yes:
        click.confirm(f"Erase all data about {address}? This cannot be undone", abort=True)
    with open_store_for(current_workspace(ctx)) as store:
        message = erase_address(store, address)
    click.echo(message)


@click.command()
@click.argument("address")
@click.option("--list", "list_name", help="Only from this list (default: from everything).")
@click.pass_context
def unsubscribe(ctx: click.Context, address: str, list_name: str | None) -> None:
    """Unsubscribe ADDRESS from one list, or from everything (then no import adds it back)."""
    from newsletter.audience.manage import unsubscribe_address
    from newsletter.store import open_store_for

    with open_store_for(current_workspace(ctx)) as store:
        message = unsubscribe_address(store, address, list_name=list_name)
    click.echo(message)


COMMANDS: tuple[click.Command, ...] = (subscribers, unsubscribe)
