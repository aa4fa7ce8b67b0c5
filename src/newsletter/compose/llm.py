"""Teasers written by a chat model behind an OpenAI-compatible API, checked and cached.

``[summarize] engine = "llm"`` asks ``endpoint`` (POST ``<endpoint>/chat/completions``, or
the endpoint itself when it already ends so) for a teaser of each article that gave no
summary of its own: a llama.cpp server, Ollama or vLLM all answer there. The reply is
cleaned (reasoning blocks, preamble, markdown, quotes, control characters), trimmed to
``summary_max_words`` at a sentence end, and used only when ``faithful.check_teaser``
finds all its numbers, dates and names in the article.

Replies are cached as files in ``.cache/teasers/`` of the workspace, one per hash of
model, prompt version and prompt (which holds the article's title and text): composing
the same article again asks nothing. A file cache, not a store table, because the
answers are derived data any compose may throw away, and composing needs no database.

Anything else (connection refused, a timeout, an HTTP error, a reply that is not a chat
completion, an empty one) gives one warning for the compose, and every teaser of that
compose is then the extractive lead: a server that failed once is not asked again, so a
dead one costs at most one ``timeout_seconds``. ``NEWSLETTER_LLM_API_KEY`` is sent as a
Bearer token when set; it is never logged or written.

In: the workspace (settings, cache folder) and Articles. Out: teaser text, or "" to
mean "use the lead".
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from newsletter import __version__
from newsletter.aio import run_async
from newsletter.compose.faithful import check_teaser
from newsletter.compose.ingest.boilerplate import word_count
from newsletter.compose.summarize import summarize, trim_to_words
from newsletter.files import atomic_write
from newsletter.models import Article
from newsletter.textsafe import printable
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

# changing the prompt changes this, so cached answers to the old prompt are not reused
PROMPT_VERSION = "teaser-1"
CACHE_DIR = Path(".cache") / "teasers"
# a small local model's context holds this much article and still has room to answer
MAX_PROMPT_WORDS = 1500
MAX_REPLY_BYTES = 256 * 1024
_FIRST_WORDS = re.compile(rf"\S+(?:\s+\S+){{0,{MAX_PROMPT_WORDS - 1}}}")
USER_AGENT = f"newsletter/{__version__} (teaser writer)"
SYSTEM_PROMPT = (
    "You write teasers for an email newsletter. Reply with the teaser only: plain text, "
    "no preamble, no heading, no quotation marks, no markdown."
)

_THINKING = re.compile(r"^.*?</think>|<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
# terminal escape sequences (CSI, OSC) whole, so no "[31m" is left once ESC is gone
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?")
_PREAMBLE_LINE = re.compile(r"^[^\n]{0,120}:[ \t]*\n")
_LABEL = re.compile(r"^(?:teaser|summary)\s*:\s*", re.IGNORECASE)
_MARKDOWN = (
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),  # images
    (re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"),  # links keep their text
    (re.compile(r"<[^>\n]{1,200}>"), " "),  # tags
    (re.compile(r"^\s{0,3}#{1,6}\s.*$", re.MULTILINE), ""),  # headings are not teaser text
    (re.compile(r"^\s{0,3}(?:>|[-*+•]|\d{1,2}[.)])\s+", re.MULTILINE), ""),
    (re.compile(r"(\*\*|__|\*|`+)(?=\S)(.+?)(?<=\S)\1"), r"\2"),  # emphasis, code
    (re.compile(r"(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)"), r"\1"),
)
# models mix straight and curly quotes, so any opening one pairs with any closing one
_OPENING_QUOTES = "\"'“‘«„"
_CLOSING_QUOTES = "\"'”’»“"


class LlmError(Exception):
    """Why the API gave no usable teaser (a reason fit for a one-line warning)."""


@dataclass(frozen=True)
class LlmSettings:
    """What a teaser request needs: where, which model, how long, the word budget."""

    url: str
    model: str
    timeout: float
    min_words: int
    max_words: int
    api_key: str | None = None

    @classmethod
    def from_workspace(cls, ws: Workspace) -> LlmSettings:
        """The workspace's [summarize] and [compose] settings and NEWSLETTER_LLM_API_KEY."""
        summarize_config, compose = ws.config.summarize, ws.config.compose
        return cls(
            url=chat_url(summarize_config.endpoint),
            model=summarize_config.model.strip(),
            timeout=summarize_config.timeout_seconds,
            min_words=compose.summary_min_words,
            max_words=compose.summary_max_words,
            api_key=ws.env.llm_api_key,
        )


def chat_url(endpoint: str) -> str:
    """``endpoint`` + ``/chat/completions``, unless it already ends so."""
    endpoint = endpoint.strip().rstrip("/")
    if endpoint.endswith("/chat/completions"):
        return endpoint
    return endpoint + "/chat/completions"


def shown_url(url: str) -> str:
    """``url`` without user:password@, query or fragment, to name it in a warning."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def llm_teasers(ws: Workspace) -> LlmTeasers | None:
    """A teaser writer for one compose when [summarize] engine = "llm", else None."""
    if ws.config.summarize.engine != "llm":
        return None
    return LlmTeasers(LlmSettings.from_workspace(ws), ws.root / CACHE_DIR)


class LlmTeasers:
    """Call with an Article -> its checked teaser, or "" for the extractive lead.

    One instance per compose: after the first failure it asks no more (see module doc).
    ``requests`` counts the calls made to the API.
    """

    def __init__(self, settings: LlmSettings, cache_dir: Path) -> None:
        self.settings = settings
        self.cache_dir = cache_dir
        self.requests = 0
        self.failure: str | None = None

    def __call__(self, article: Article) -> str:
        """The teaser for ``article`` when the model wrote a faithful one, else ""."""
        messages = prompt_messages(article, self.settings)
        key = cache_key(self.settings.model, messages)
        teaser = self._cached(key)
        if teaser is None:
            if self.failure is not None:
                return ""
            try:
                teaser = self._ask(messages)
            except LlmError as exc:
                self.failure = str(exc)
                log.warning(
                    "LLM teasers from %s failed: %s; this compose uses the lead sentences "
                    '(check [summarize] endpoint and model, or set engine = "extractive")',
                    shown_url(self.settings.url),
                    exc,
                )
                return ""
            self._store(key, teaser)
        verdict = check_teaser(teaser, title=article.title, text=article.text)
        if not verdict.faithful:
            log.warning(
                "%s: the LLM teaser states %s, not found in the article; "
                "the lead sentences are used instead",
                printable(article.source),
                ", ".join(repr(word) for word in verdict.unsupported),
            )
            return ""
        return teaser

    def _ask(self, messages: list[dict[str, str]]) -> str:
        """One request -> the cleaned teaser; LlmError for anything else."""
        self.requests += 1
        reply = ask_chat(self.settings, messages)
        teaser = clean_reply(reply, max_words=self.settings.max_words)
        if not teaser:
            raise LlmError("the model's reply was empty")
        return teaser

    def _cached(self, key: str) -> str | None:
        """The cached teaser for ``key``; None when there is none or it cannot be read."""
        path = self.cache_dir / f"{key}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.info("ignoring the unreadable teaser cache file %s (%s)", path, exc)
            return None
        teaser = data.get("teaser") if isinstance(data, dict) else None
        return teaser if isinstance(teaser, str) and teaser else None

    def _store(self, key: str, teaser: str) -> None:
        """Keep ``teaser`` for ``key``; a cache that cannot be written only costs a call."""
        data = {"model": self.settings.model, "prompt": PROMPT_VERSION, "teaser": teaser}
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            # no fsync: losing a cache file in a power cut costs one request
            atomic_write(self.cache_dir / f"{key}.json", json.dumps(data) + "\n", sync=False)
        except OSError as exc:
            log.warning("cannot write the teaser cache in %s: %s", self.cache_dir, exc)


def prompt_messages(article: Article, settings: LlmSettings) -> list[dict[str, str]]:
    """The chat messages asking for ``article``'s teaser (its text cut to a sane size)."""
    # cut after the first MAX_PROMPT_WORDS words, keeping the paragraphs' line breaks
    head = _FIRST_WORDS.match(article.text.strip())
    text = head.group() if head else article.text.strip()
    instruction = (
        f"Write a teaser of {settings.min_words} to {settings.max_words} words for the "
        "article below, in the language the article is written in. State only what the "
        "article states, and write names, numbers and dates exactly as it does. Do not "
        "repeat the title."
    )
    user = f"{instruction}\n\nTitle: {' '.join(article.title.split())}\n\nArticle:\n{text}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def cache_key(model: str, messages: list[dict[str, str]]) -> str:
    """The hex SHA-256 of the model, the prompt version and the messages."""
    payload = json.dumps([PROMPT_VERSION, model, messages], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def ask_chat(settings: LlmSettings, messages: list[dict[str, str]]) -> str:
    """POST ``messages`` to the chat completions URL -> the reply's text, within one
    deadline of ``settings.timeout`` seconds (connecting and every read); LlmError else."""
    try:
        return run_async(_post_within(settings, messages))
    except TimeoutError:
        raise LlmError(f"no complete answer within {settings.timeout:g} s") from None
    except httpx.ConnectError as exc:
        raise LlmError(f"cannot connect ({exc or 'connection failed'})") from None
    except httpx.HTTPError as exc:
        raise LlmError(str(exc) or type(exc).__name__) from None


async def _post_within(settings: LlmSettings, messages: list[dict[str, str]]) -> str:
    """The POST itself: request body and headers in, the reply's text out (LlmError,
    httpx errors or TimeoutError else)."""
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if settings.api_key:
        headers["Authorization"] = f"Bearer {settings.api_key}"
    body = {
        "model": settings.model,
        "messages": messages,
        # the same article should get the same teaser
        "temperature": 0,
        "max_tokens": settings.max_words * 4,
        "stream": False,
    }
    async with (
        asyncio.timeout(settings.timeout),
        httpx.AsyncClient(timeout=settings.timeout, headers=headers) as client,
        client.stream("POST", settings.url, json=body) as response,
    ):
        data = bytearray()
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > MAX_REPLY_BYTES:
                raise LlmError(f"the reply passed {MAX_REPLY_BYTES // 1024} KB")
        if not response.is_success:
            reason = f"HTTP {response.status_code} {response.reason_phrase}".strip()
            raise LlmError(reason + _error_detail(bytes(data)))
    return reply_text(bytes(data))


def _error_detail(body: bytes) -> str:
    """ ": <message>" from an error body such APIs send ({"error": {"message": ...}})."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return ""
    message = error.get("message") if isinstance(error, dict) else error
    return f": {printable(message)[:200]}" if isinstance(message, str) and message else ""


def reply_text(body: bytes) -> str:
    """The first choice's message content of a chat completion; LlmError when not one."""
    try:
        data: Any = json.loads(body)
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise LlmError(
            "the reply is not a chat completion (no choices[0].message.content)"
        ) from None
    if not isinstance(content, str):
        raise LlmError("the reply's message content is not text")
    return content


def clean_reply(reply: str, *, max_words: int) -> str:
    """The model's ``reply`` as one plain-text teaser of at most ``max_words`` words.

    Removed: reasoning blocks (<think>...</think>), a preamble line ("Here is a
    teaser:"), a "Teaser:" label, markdown and tags, wrapping quotes, control
    characters. Too long: whole sentences up to ``max_words``, or the first cut with "…".
    """
    text = _THINKING.sub("", reply) if "think>" in reply.lower() else reply
    text = printable(_ESCAPES.sub("", text), keep_newlines=True).strip()
    if _PREAMBLE_LINE.match(text) and _PREAMBLE_LINE.sub("", text, count=1).strip():
        text = _PREAMBLE_LINE.sub("", text, count=1).strip()
    for pattern, replacement in _MARKDOWN:
        text = pattern.sub(replacement, text)
    text = _LABEL.sub("", " ".join(text.split()))
    text = _unquoted(text)
    if word_count(text) <= max_words:
        return text
    return summarize(text, min_words=max_words, max_words=max_words) or trim_to_words(
        text, max_words
    )


def _unquoted(text: str) -> str:
    """``text`` without one pair of quotation marks wrapping all of it."""
    if len(text) > 1 and text[0] in _OPENING_QUOTES and text[-1] in _CLOSING_QUOTES:
        inner = text[1:-1].strip()
        # "A" said B "C": the quotes are not one pair around it all
        if text[0] not in inner and text[-1] not in inner:
            return inner
    return text
