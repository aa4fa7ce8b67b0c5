"""``history``: one line per sent issue, newest first, for people or (``--json``) machines."""

from __future__ import annotations

import json

import click

from newsletter.cli.state import current_workspace
from newsletter.textsafe import json_for_terminal, printable


@click.command()
@click.option("--list", "list_name", help="Only issues sent to this list.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array (ISO 8601 UTC times).")
@click.pass_context
def history(ctx: click.Context, list_name: str | None, as_json: bool) -> None:
    """Every sent issue, newest first: its date and subject; recipients, sent, failed,
    deferred, unknown and skipped; then subscribers who bounced, complained, or
    unsubscribed through that issue's links. Test sends and dry runs are not listed.
    """
    from newsletter.deliver.history import history_table, issue_history

    ws = current_workspace(ctx)
    lines = issue_history(ws, list_name)
    if as_json:
        data = [line.as_json() for line in lines]
        click.echo(json_for_terminal(json.dumps(data, ensure_ascii=False, indent=2)))
        return
    if not lines:
        click.echo("no issues sent yet" + (f" to {printable(list_name)}" if list_name else ""))
        return
    for row in history_table(lines, ws.config.publication.timezone):
        click.echo(row)
