"""``bounces PATH...``: bounces and complaints that arrived by mail."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.state import current_workspace
from newsletter.textsafe import printable


@click.command()
# readable=False: an unreadable file is the core's one-line warning, not a usage error
# that would leave every other path unprocessed
@click.argument("paths", nargs=-1, required=True, type=click.Path(readable=False, path_type=Path))
@click.pass_context
def bounces(ctx: click.Context, paths: tuple[Path, ...]) -> None:
    """Process bounces and complaints in PATHS (.eml files, Maildir folders, mbox files).

    Hard bounces and spam complaints suppress the subscriber at once, soft bounces
    after bounces.soft_limit within bounces.soft_window_days. Mail asking to unsubscribe
    (the List-Unsubscribe mailto:) unsubscribes: with its signed link from that list,
    without one the sender's address from every list (each listed). Safe to run again.
    Exits 1 when something could not be read or classified (the rest is processed).
    """
    from newsletter.audience.bounces.run import process_paths

    report = process_paths(current_workspace(ctx), list(paths))
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
    for address, where in report.unsubscribed_senders:
        click.echo(
            f"unsubscribed {printable(address)} from every list: a mail from that address "
            f"asked, without a valid unsubscribe link ({printable(where)})"
        )
    click.echo(report.summary())
    if report.incomplete:
        ctx.exit(1)
