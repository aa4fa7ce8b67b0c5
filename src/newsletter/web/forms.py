"""What a request to ``serve`` brings: its posted fields, its client, its consent record.

``read_form`` reads urlencoded or multipart bodies (an unreadable one counts as empty,
one over ``MAX_BODY_BYTES`` is refused with 413); ``field`` gives one trimmed, capped
text field; ``holds_nul`` spots the NUL bytes PostgreSQL text cannot store.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

from newsletter.store import Consent

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_FIELD = 320
MAX_CONSENT_TEXT = 4000


def client_address(request: Request) -> str:
    """The client's address (uvicorn takes it from a trusted proxy's header), or "unknown"."""
    return request.client.host if request.client else "unknown"


def consent_of(request: Request, **extra: Any) -> Consent:
    """Where a web request came from, for the consent trail; ``extra`` adds Consent fields."""
    user_agent = request.headers.get("user-agent")
    return Consent(
        source="web",
        ip=client_address(request),
        user_agent=user_agent[:1000] if user_agent else None,
        **extra,
    )


def field(form: FormData | Mapping[str, Any], name: str, limit: int = MAX_FIELD) -> str:
    """Text field ``name`` stripped and cut to ``limit`` characters; "" if absent or a file."""
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


async def read_form(request: Request) -> FormData:
    """The posted fields (urlencoded or multipart); an unreadable body counts as empty.

    Raises HTTPException 413 for a body over ``MAX_BODY_BYTES``, before anything changes.
    """
    try:
        return await request.form(max_files=0, max_fields=50, max_part_size=MAX_BODY_BYTES)
    except HTTPException as exc:
        if exc.status_code == 413:
            raise
        log.info("unreadable form body from %s: %s", client_address(request), exc.detail)
        return FormData()
    except Exception as exc:  # anything else unreadable in the body: no fields
        log.info("unreadable form body from %s: %s", client_address(request), exc)
        return FormData()


def holds_nul(form: FormData) -> bool:
    """Whether a field name or value holds NUL, which PostgreSQL text cannot store."""
    return any(
        "\x00" in key or (isinstance(value, str) and "\x00" in value)
        for key, value in form.multi_items()
    )
