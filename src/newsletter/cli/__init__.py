"""The command line: declarations only.

Each command parses its options, loads the workspace and calls one function of
the core; it prints what that function returns. The verbs live in one module per
group (``compose``, ``subscribers``, ``send``, ``serve``, ``bounces``, ``history``);
``main`` catches ``NewsletterError`` once and turns it into one line on stderr and exit 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from newsletter import __version__
from newsletter.cli import (
    archive,
    bounces,
    compose,
    history,
    recurring,
    send,
    serve,
    subscribers,
)
from newsletter.cli.logs import configure_logging
from newsletter.cli.state import State
from newsletter.errors import NewsletterError


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
    configure_logging(verbose)
    ctx.obj = State(workspace)


for _command in (
    *compose.COMMANDS,
    *subscribers.COMMANDS,
    *send.COMMANDS,
    *recurring.COMMANDS,
    serve.serve,
    bounces.bounces,
    history.history,
    archive.archive,
):
    cli.add_command(_command)


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
