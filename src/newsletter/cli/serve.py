"""``serve``: the web process for links, forms and scheduled sends."""

from __future__ import annotations

import click

from newsletter.cli.logs import show_info_from
from newsletter.cli.state import current_workspace


@click.command()
@click.option("--host", help="Address to listen on (default: serve.host).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="Port to listen on (default: serve.port; 0 picks a free one).",
)
@click.option(
    "--workers",
    type=int,
    help="Processes answering requests (default: serve.workers, 1); one runs the scheduler.",
)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Answer links and forms, publish the archive, run scheduled sends (Ctrl-C stops).

    Answers the unsubscribe, subscribe and confirm links, serves the web version of
    each issue, the public archive at /archive/ (with its feed) and the issues' images
    at /media/, and runs scheduled sends (send --at) and the [[recurring]] series.
    With --workers N, N processes answer on the one port; SIGTERM stops like Ctrl-C.
    """
    from newsletter.web.server import run_server

    # a long-running service shows what it does: a line per request and per scheduled send
    show_info_from("newsletter.web", "newsletter.schedule")
    workspace = current_workspace(ctx)
    run_server(
        workspace,
        host=host,
        port=port,
        workers=workers,
        on_ready=lambda url: click.echo(
            f"serving the links of {workspace.base_url} on {url} (Ctrl-C to stop)"
        ),
    )
    click.echo("serve stopped")
