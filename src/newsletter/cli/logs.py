"""How log records reach the terminal: the root group's ``-v`` levels and filters."""

from __future__ import annotations

import logging

# Libraries that log below ERROR what our own errors and warnings say better.
QUIET_LIBRARIES = ("trafilatura", "htmldate", "justext", "courlan")

# Loggers whose INFO lines a plain run shows too (serve adds its request and schedule logs).
_INFO_SHOWN: set[str] = set()


def configure_logging(verbose: int) -> None:
    """Send log records to stderr for a run with ``verbose`` times ``-v`` (0, 1, 2+)."""
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
    # trafilatura warns about pages it cannot use ("discarding data: None") before the
    # reader raises its own one-line error: only -vv wants its voice
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose > 1 else logging.ERROR)


def show_info_from(*names: str) -> None:
    """Show the INFO records of the loggers ``names`` (and their children) on a plain run."""
    for name in names:
        _INFO_SHOWN.add(name)
        if not logging.getLogger(name).isEnabledFor(logging.INFO):
            logging.getLogger(name).setLevel(logging.INFO)


class _LowerLevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "notice", False) and record.levelno < logging.WARNING:
            return record.getMessage()
        record.levelname = record.levelname.lower()
        return super().format(record)


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
