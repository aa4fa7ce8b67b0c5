"""The send's progress bar on stderr, and keeping log lines off its open line."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO, cast

import click


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


def _rate_and_share(progress: Any) -> str:
    """``N msg/s``, and this sender's share when others send the same campaign."""
    if not progress:
        return ""
    line = f"{progress.rate:.0f} msg/s"
    if progress.campaign_done is not None and progress.campaign_done > progress.done:
        line += f", {progress.done} by this sender"
    return line


@contextlib.contextmanager
def send_progress_bar(length: int) -> Iterator[Callable[[Any], None]]:
    """A progress bar on stderr for ``length`` rows -> the send's progress callback.

    The bar shows the campaign's progress (every sender's), its text this sender's rate
    and, when others share the campaign, its own count.

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
        item_show_func=_rate_and_share,
    )
    try:
        with bar:
            seen = [0]

            def on_progress(progress: Any) -> None:
                # the bar is the campaign's progress, all senders together
                done = progress.done if progress.campaign_done is None else progress.campaign_done
                bar.update(done - seen[0], progress)
                seen[0] = done

            yield on_progress
    finally:
        for handler in handlers:
            handler.removeFilter(line_end)
