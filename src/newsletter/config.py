"""newsletter.toml plus environment variables -> one validated ``Config``.

The schema is declared once, as pydantic models; every problem in the file is
reported at once in a single ``ConfigError``. What belongs in git lives in the
TOML file; secrets and deployment addresses come from the environment:

``NEWSLETTER_BASE_URL``     public URL where ``newsletter serve`` answers (overrides the file)
``NEWSLETTER_SMTP_URL``     smtp://user:pass@host:587, smtps://host:465, or smtp://host:25
``NEWSLETTER_DATABASE_URL`` SQLAlchemy URL; default: a SQLite file under ``subscribers/``
``NEWSLETTER_SECRET_KEY``   signing key(s) for links, comma separated, newest first
``NEWSLETTER_DKIM_KEY``     PEM text of the DKIM private key, or a path to it
``NEWSLETTER_LLM_API_KEY``  bearer token for ``[summarize] engine = "llm"``, when one is needed
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from newsletter.errors import ConfigError
from newsletter.files import read_bytes
from newsletter.recurrence import parse_duration, parse_every

CONFIG_FILE = "newsletter.toml"
# what a recurring series' subject may name: {number}, {date}, {top_title}, {publication}
SUBJECT_FIELDS = {"number", "date", "top_title", "publication"}

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Publication(_Section):
    """Who publishes, where they live on the web and on the map."""

    name: NonEmpty
    tagline: str = ""
    language: str = "en"
    timezone: str = "UTC"
    base_url: NonEmpty
    postal_address: str = ""
    website: str = ""
    logo_url: str = ""
    accent_color: str = Field(default="#b3261e", pattern=r"^#[0-9a-fA-F]{6}$")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// for local testing)")
        return value.rstrip("/")


class Sender(_Section):
    """The From identity and the addresses around it."""

    name: NonEmpty
    address: NonEmpty
    reply_to: str = ""
    unsubscribe_mailbox: str = ""
    bounce_address: str = ""
    commercial: bool = True

    @field_validator("address")
    @classmethod
    def _looks_like_address(cls, value: str) -> str:
        local, _, domain = value.partition("@")
        if not local or "." not in domain:
            raise ValueError(f"{value!r} is not an email address")
        return value

    @property
    def domain(self) -> str:
        """The part after the @ of the From address."""
        return self.address.rpartition("@")[2].lower()


class Compose(_Section):
    """How issues are composed from articles."""

    issues_dir: str = "issues"
    summary_min_words: int = Field(default=40, ge=5)
    summary_max_words: int = Field(default=60, ge=5)
    fetch_timeout: float = Field(default=15.0, gt=0)
    max_html_kb: int = Field(default=90, ge=10)

    @model_validator(mode="after")
    def _min_below_max(self) -> Compose:
        if self.summary_min_words > self.summary_max_words:
            raise ValueError("summary_min_words must not exceed summary_max_words")
        return self


class Summarize(_Section):
    """Who writes the teasers: the extractive lead (default) or an OpenAI-compatible
    chat completions API (llama.cpp server, Ollama, vLLM), checked for faithfulness."""

    engine: Literal["extractive", "llm"] = "extractive"
    # the API's base URL (".../v1"; /chat/completions is added) or the full URL
    endpoint: str = ""
    model: str = ""
    timeout_seconds: float = Field(default=30, gt=0)

    @field_validator("endpoint")
    @classmethod
    def _endpoint_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if value and (parts.scheme not in ("https", "http") or not parts.hostname):
            raise ValueError(f"{value!r} is not a URL like http://127.0.0.1:8080/v1")
        return value.strip()

    @model_validator(mode="after")
    def _llm_needs_endpoint(self) -> Summarize:
        if self.engine == "llm" and not (self.endpoint and self.model.strip()):
            raise ValueError('engine = "llm" needs endpoint and model')
        return self


class Send(_Section):
    """Delivery defaults; CLI flags override them."""

    list: str = "main"
    connections: int = Field(default=4, ge=1, le=64)
    rate: float = Field(
        default=0.0, ge=0, description="messages per second for each sender, 0 = no limit"
    )
    # the whole campaign's limit, shared among the senders running it at once
    campaign_rate: float = Field(
        default=0.0, ge=0, description="messages per second for the campaign, 0 = no limit"
    )
    messages_per_connection: int = Field(default=100, ge=1)
    # kept so workspaces that set it still load (unknown keys are refused); every SMTP
    # transaction carries one recipient because every message is personalised
    recipients_per_transaction: int = Field(default=1, ge=1, description="ignored")
    retry_floor_seconds: int = Field(default=300, ge=1)
    retry_cap_seconds: int = Field(default=4000, ge=1)
    retry_lifetime_hours: float = Field(default=120, gt=0)
    timeout_seconds: float = Field(default=60, gt=0)
    allow_insecure: bool = False


class Dkim(_Section):
    """DKIM signing; the key itself comes from NEWSLETTER_DKIM_KEY."""

    domain: str = ""
    selector: str = ""


class Serve(_Section):
    """The HTTP endpoints and the scheduler."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # processes answering requests on the one port (the scheduler runs in one of them)
    workers: int = Field(default=1, ge=1)
    missed_window_hours: float = Field(default=6, gt=0)
    pending_expiry_hours: float = Field(default=72, gt=0)
    # per client and minute, counted in each worker apart (in memory)
    invalid_token_limit_per_minute: int = Field(default=30, ge=1)
    subscribe_limit_per_minute: int = Field(default=10, ge=1)
    # lists the public subscribe form may add people to; empty = only send.list
    subscribe_lists: list[str] = []
    # reverse proxies whose X-Forwarded-For is believed (uvicorn's forwarded_allow_ips)
    trusted_proxies: list[str] = ["127.0.0.1", "::1"]
    scheduler_interval_seconds: float = Field(default=20, gt=0)
    # pages whose sign-up forms may post to /subscribe (scheme://host[:port]); empty = the
    # base URL's origin and publication.website's
    form_origins: list[str] = []
    # at most one confirmation mail per address this often, whoever asks: the link
    # already sent stays valid for pending_expiry_hours, so a retry needs no new one
    confirmation_mail_every_minutes: float = Field(default=60, gt=0)
    # a client must send a request's headers, then its body, within these (slow-client guard)
    header_timeout_seconds: float = Field(default=10, gt=0)
    body_timeout_seconds: float = Field(default=30, gt=0)
    # open connections at most (also kept below the process's open-file limit)
    max_connections: int = Field(default=500, ge=2)
    # "proof-of-work": the hosted sign-up form makes the browser solve a self-hosted puzzle
    # (SHA-256 with form_challenge_bits leading zero bits) before a sign-up counts
    form_challenge: Literal["none", "proof-of-work"] = "none"
    # each bit doubles the work a browser does before its sign-up counts
    form_challenge_bits: int = Field(default=17, ge=1, le=32)

    @field_validator("form_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        for value in values:
            parts = urlsplit(value)
            if parts.scheme not in ("https", "http") or not parts.netloc or parts.path.strip("/"):
                raise ValueError(f"{value!r} is not an origin like https://www.example.org")
        return values


class Bounces(_Section):
    """How bounce reports received by mail count (``newsletter bounces``)."""

    # soft bounces (4.x.x, delayed) within the window that suppress like one hard bounce
    soft_limit: int = Field(default=3, ge=1)
    soft_window_days: float = Field(default=30, gt=0)
    # a report with no VERP address or unsubscribe token of ours could be written by anyone
    # who can mail the bounce address: by default it changes nothing; true looks its
    # Final-Recipient / Original-Rcpt-To up among existing subscribers instead
    trust_unsigned: bool = False


class Images(_Section):
    """Images in the mail (``compose.hosting``)."""

    # false: a feed's or page's image stays on its own host, which then sees every
    # reader's address; true fetches it once when composing and hosts it under base_url
    rehost: bool = False


class Archive(_Section):
    """What the public archive (``/archive/`` of ``newsletter serve``, ``newsletter archive
    build``) shows."""

    # only issues sent to these lists are published (empty: the [send] list)
    lists: list[NonEmpty] = []
    # issues per index page
    page_size: int = Field(default=20, ge=1, le=500)
    # entries in the Atom feed (the newest)
    feed_entries: int = Field(default=20, ge=1, le=500)


Texts = list[NonEmpty]
_SUBJECT_FIELDS = re.compile(r"\{([^{}]*)\}")


class Recurring(_Section):
    """One ``[[recurring]]`` series: an issue composed from ``sources`` and sent on a rule."""

    name: NonEmpty = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", max_length=60)
    # an RRULE or "friday 09:00"; stored as the RRULE it means (see newsletter.recurrence)
    every: NonEmpty
    sources: Texts = Field(min_length=1)
    # pydantic reads annotations in the class namespace, where the field ``list`` hides
    # the builtin: the list fields use the module-level alias Texts
    list: NonEmpty = "main"
    subject: NonEmpty = "{publication} #{number}"
    min_articles: int = Field(default=1, ge=1)
    max_articles: int = Field(default=8, ge=1)
    review_before: str = ""
    review_to: Texts = []
    approval: Literal["auto", "required"] = "auto"

    @field_validator("every")
    @classmethod
    def _rule(cls, value: str) -> str:
        return parse_every(value)

    @field_validator("review_before")
    @classmethod
    def _duration(cls, value: str) -> str:
        if value.strip():
            parse_duration(value)
        return value.strip()

    @field_validator("subject")
    @classmethod
    def _subject_fields(cls, value: str) -> str:
        unknown = set(_SUBJECT_FIELDS.findall(value)) - SUBJECT_FIELDS
        if unknown:
            raise ValueError(
                f"unknown field {{{sorted(unknown)[0]}}}; use "
                + ", ".join(f"{{{name}}}" for name in sorted(SUBJECT_FIELDS))
            )
        return value

    @model_validator(mode="after")
    def _limits(self) -> Recurring:
        if self.min_articles > self.max_articles:
            raise ValueError("min_articles must not exceed max_articles")
        return self


class ConfigModel(_Section):
    """The whole of newsletter.toml."""

    publication: Publication
    sender: Sender
    compose: Compose = Compose()
    summarize: Summarize = Summarize()
    send: Send = Send()
    dkim: Dkim = Dkim()
    serve: Serve = Serve()
    bounces: Bounces = Bounces()
    images: Images = Images()
    archive: Archive = Archive()
    recurring: list[Recurring] = []

    @field_validator("recurring")
    @classmethod
    def _unique_names(cls, values: list[Recurring]) -> list[Recurring]:
        names = [series.name for series in values]
        if repeated := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"two series are named {repeated[0]!r}; give each its own name")
        return values


@dataclass(frozen=True)
class Environment:
    """What comes from environment variables, already read."""

    smtp_url: str | None
    database_url: str | None
    secret_keys: tuple[str, ...]
    dkim_key: str | None
    # a secret: kept out of repr, so no log line or traceback shows it
    llm_api_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> Environment:
        """Read the NEWSLETTER_* variables (os.environ unless given)."""
        env = os.environ if environ is None else environ
        keys = tuple(
            k.strip() for k in env.get("NEWSLETTER_SECRET_KEY", "").split(",") if k.strip()
        )
        return cls(
            smtp_url=env.get("NEWSLETTER_SMTP_URL") or None,
            database_url=env.get("NEWSLETTER_DATABASE_URL") or None,
            secret_keys=keys,
            dkim_key=env.get("NEWSLETTER_DKIM_KEY") or None,
            llm_api_key=env.get("NEWSLETTER_LLM_API_KEY") or None,
        )


def _named_series(loc: tuple[Any, ...], data: dict[str, Any]) -> tuple[Any, ...]:
    """``("recurring", 0, "every")`` -> ``("recurring[weekly]", "every")`` when the series
    has a name, so an error says which series it is about."""
    if len(loc) < 2 or loc[0] != "recurring" or not isinstance(loc[1], int):
        return loc
    series = data.get("recurring")
    entry = series[loc[1]] if isinstance(series, list) and loc[1] < len(series) else None
    name = entry.get("name") if isinstance(entry, dict) else None
    label = f"recurring[{name}]" if isinstance(name, str) and name else f"recurring[{loc[1] + 1}]"
    return (label, *loc[2:])


def _format_errors(
    path: Path,
    error: ValidationError,
    from_env: dict[str, str] | None = None,
    data: dict[str, Any] | None = None,
) -> str:
    problems = []
    for item in error.errors():
        loc = _named_series(item["loc"], data or {})
        where = ".".join(str(part) for part in loc) or "(top level)"
        if from_env and where in from_env:
            where = f"{from_env[where]} (replaces {where})"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown setting (check the spelling)"
        problems.append(f"{where}: {message}")
    return f"{path}: " + "; ".join(problems)


def parse_config(
    data: dict[str, Any], path: Path, environ: dict[str, str] | None = None
) -> ConfigModel:
    """Validate parsed TOML ``data`` (from ``path``, named in errors) -> ConfigModel.

    ``NEWSLETTER_BASE_URL`` in the environment replaces ``publication.base_url``.
    Raises ConfigError listing every problem at once.
    """
    env = os.environ if environ is None else environ
    data = {
        section: dict(values) if isinstance(values, dict) else values
        for section, values in data.items()
    }
    from_env: dict[str, str] = {}
    if env.get("NEWSLETTER_BASE_URL") and isinstance(data.get("publication"), dict):
        data["publication"]["base_url"] = env["NEWSLETTER_BASE_URL"]
        from_env["publication.base_url"] = "NEWSLETTER_BASE_URL"
    try:
        return ConfigModel.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            _format_errors(path, exc, from_env, data), hint="fix these settings and run again"
        ) from None


def load_config(path: Path, environ: dict[str, str] | None = None) -> ConfigModel:
    """Read and validate the TOML file at ``path`` -> ConfigModel, or raise ConfigError."""
    raw = read_bytes(
        path, ConfigError, missing_hint="run inside a workspace or create newsletter.toml"
    )
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return parse_config(data, path, environ)
