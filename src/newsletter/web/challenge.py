"""The sign-up form's optional proof-of-work challenge (``serve.form_challenge``).

With ``"proof-of-work"`` switched on, the hosted form page carries a challenge: a random
value signed and time-stamped with the workspace's keys. A small script served by
``serve`` itself (``pages/challenge.js``, no third party involved) looks for a number
``answer`` such that ``sha256(challenge + ":" + answer)`` starts with
``serve.form_challenge_bits`` zero bits and posts it with the form. Finding one costs the
browser about 2**bits hashes; checking it costs the server one.

A post counts only with a solved challenge that is ours, younger than
``MAX_AGE_SECONDS`` and not used before. Used challenges are remembered in memory until
they expire, so each one signs up once per ``serve`` process (several processes behind one
proxy would each accept it once: bounded, and each use still needs its own address past
the per-address mail limit). A post that fails gets the same answer as any other and
changes nothing, so the form reveals nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.responses import Response

from newsletter.errors import RenderError
from newsletter.web.pages import SUBSCRIBE_FORM, Pages

log = logging.getLogger(__name__)

NONE = "none"
PROOF_OF_WORK = "proof-of-work"
SALT = "newsletter.form-challenge"
# long enough to fill in a form after a coffee, short enough to bound what is remembered
MAX_AGE_SECONDS = 3600
# a flood of solved challenges cannot grow memory past this; the oldest are forgotten first
MAX_REMEMBERED = 100_000
CHALLENGE_FIELD = "challenge"
ANSWER_FIELD = "challenge_answer"
SCRIPT_PATH = "/challenge.js"
SCRIPT_TEMPLATE = "pages/challenge.js"
# the browser counts up from 0: even 32 bits need fewer than 16 digits
_ANSWER = re.compile(r"[0-9]{1,16}")
_MAX_CHALLENGE_LENGTH = 200


def leading_zero_bits(digest: bytes) -> int:
    """How many bits at the start of ``digest`` are 0 (``8 * len`` for all zeros)."""
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def solves(challenge: str, answer: str, bits: int) -> bool:
    """Whether ``sha256(challenge + ":" + answer)`` starts with at least ``bits`` zero bits."""
    digest = hashlib.sha256(f"{challenge}:{answer}".encode()).digest()
    return leading_zero_bits(digest) >= bits


@dataclass(frozen=True)
class Issued:
    """A challenge as the form page shows it: the signed value, its bits and lifetime."""

    value: str
    bits: int
    max_age_seconds: int


class _Used:
    """Challenge ids already accepted, each kept until it would have expired anyway."""

    def __init__(self, max_age: float, clock: Callable[[], float]) -> None:
        self._max_age = max_age
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, challenge_id: str) -> bool:
        """Record ``challenge_id`` as used -> False when it was used already."""
        with self._lock:
            now = self._clock()
            # ids go in as they are accepted, so the oldest acceptances sit in front
            while self._seen and next(iter(self._seen.values())) <= now:
                self._seen.popitem(last=False)
            if challenge_id in self._seen:
                return False
            if len(self._seen) >= MAX_REMEMBERED:
                self._seen.popitem(last=False)
            self._seen[challenge_id] = now + self._max_age
            return True


class FormChallenge:
    """Issues and checks the sign-up form's challenges for one ``serve`` process.

    ``mode`` is ``"none"`` (off: ``issue`` gives None, ``accepts`` is always True) or
    ``"proof-of-work"``; ``keys`` are the workspace's signing keys, newest first;
    ``bits`` the zero bits an answer needs. ``clock`` gives wall-clock seconds, like
    the time stamp inside the signed value.
    """

    def __init__(
        self,
        mode: str,
        keys: Sequence[str],
        *,
        bits: int,
        max_age_seconds: int = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.enabled = mode == PROOF_OF_WORK
        self.bits = bits
        self.max_age_seconds = max_age_seconds
        self._serializer = URLSafeTimedSerializer(list(reversed(keys)), salt=SALT)
        self._used = _Used(max_age_seconds, clock)

    def issue(self) -> Issued | None:
        """A fresh challenge for one form page, or None when the challenge is off."""
        if not self.enabled:
            return None
        value = str(self._serializer.dumps(secrets.token_hex(16)))
        return Issued(value, self.bits, self.max_age_seconds)

    def accepts(self, form: Mapping[str, Any]) -> bool:
        """Whether the posted ``form`` holds a solved, fresh, unused challenge of ours.

        True when the challenge is off. An accepted challenge is used up.
        """
        if not self.enabled:
            return True
        challenge, answer = form.get(CHALLENGE_FIELD), form.get(ANSWER_FIELD)
        if not isinstance(challenge, str) or not isinstance(answer, str):
            return False
        if len(challenge) > _MAX_CHALLENGE_LENGTH or not _ANSWER.fullmatch(answer):
            return False
        # the cheap hash first: a forger's unsolved post costs no signature check
        if not solves(challenge, answer, self.bits):
            return False
        try:
            challenge_id = self._serializer.loads(challenge, max_age=self.max_age_seconds)
        except (BadData, UnicodeError, ValueError):
            return False
        return isinstance(challenge_id, str) and self._used.claim(challenge_id)

    def check_page(self, pages: Pages) -> None:
        """Fail at start-up when the challenge is on but the form page would not carry it.

        Raises RenderError naming the template (a workspace override written before the
        challenge existed would otherwise silently drop every sign-up).
        """
        issued = self.issue()
        if issued is None:
            return
        page = pages.render(SUBSCRIBE_FORM, list_name="main", lists=["main"], challenge=issued)
        if issued.value not in page or ANSWER_FIELD not in page:
            raise RenderError(
                f"templates/pages/{SUBSCRIBE_FORM}.html.j2 has no form challenge fields, "
                "but serve.form_challenge is on",
                hint="compare it with the packaged one (newsletter theme copy "
                f'pages/{SUBSCRIBE_FORM}.html.j2 --force) or set form_challenge = "none"',
            )


def script_response(pages: Pages) -> Response:
    """The browser side of the challenge (the workspace's ``pages/challenge.js`` if any)."""
    loader = pages.env.loader
    assert loader is not None
    source, _, _ = loader.get_source(pages.env, SCRIPT_TEMPLATE)
    return Response(
        source,
        media_type="text/javascript",
        headers={
            "Cache-Control": "public, max-age=3600",
            "X-Content-Type-Options": "nosniff",
        },
    )


def with_script(csp: str) -> str:
    """``csp`` letting the page run scripts from its own origin (the challenge's)."""
    return f"{csp}; script-src 'self'"
