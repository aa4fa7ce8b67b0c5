"""The one exception hierarchy of the project.

Library code raises these with a message a user can act on; the CLI catches
``NewsletterError`` once, prints ``str(error)`` on one line and exits non-zero.
Anything else escaping is a bug and keeps its traceback.
"""

from __future__ import annotations


class NewsletterError(Exception):
    """A problem the user can fix: bad input, bad config, an unreachable server.

    ``message`` names the file, line or field and the problem; ``hint`` says
    what to do next. ``str()`` joins them into the one line the CLI prints.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(NewsletterError):
    """newsletter.toml or an environment variable is missing or invalid."""


class SourceError(NewsletterError):
    """An article source cannot be read or holds no article."""


class BounceSourceError(NewsletterError):
    """A path given to ``newsletter bounces`` does not exist."""


class RenderError(NewsletterError):
    """A template or an issue file cannot be rendered."""


class FolderTakenError(RenderError):
    """The issue folder to create exists already and is not empty."""


class StoreError(NewsletterError):
    """The subscriber database or an import/export file is unusable."""


class AddressError(StoreError):
    """A string is not a usable email address."""


class ScheduleError(NewsletterError):
    """A send time that cannot be read, a send in the past, a schedule that cannot change."""


class AlreadySentError(NewsletterError):
    """The campaign finished before; sending it again needs ``--retry-failed``."""


class DeliveryError(NewsletterError):
    """The mail server cannot be reached or refuses us as a whole (not one recipient)."""


class ServerBusyError(DeliveryError):
    """The server answered the greeting with a 4xx ("421 too many connections", "421
    restarting"): no session now, which says nothing about our messages or login."""


class TokenError(NewsletterError):
    """A signed link is forged, tampered with, truncated or unknown."""


class ExpiredTokenError(TokenError):
    """A correctly signed confirm token older than its time limit."""
