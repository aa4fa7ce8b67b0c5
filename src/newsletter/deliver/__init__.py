"""Delivery: the ledger loop that sends an issue to a list once, resumably.

Public API (the CLI, ``schedule`` and ``serve`` call these):

``plan_send(ws, issue_dir, list_name)``  -> SendPlan: recipients, subject, new/resume/finished
``send_issue(ws, issue_dir, *, list_name, connections, rate, retry_failed, smtp_url,
progress)``                              -> SendReport (see ``send``)
``send_test(ws, issue_dir, addresses)``  -> SendReport: a marked test, nothing recorded
``dry_run(ws, issue_dir, outdir, list_name)`` -> DryRunReport: the exact .eml files
``retry_due_deferrals(ws)``              -> reports of campaigns whose deferrals came due
``latest_issue(ws, list_name)``         -> the newest issue folder not yet sent to the list
``parse_rate("10/s")``                   -> messages per second

Modules: ``content`` (render once, sender-rule checks, the template), ``engine`` (the
asyncio ledger loop: group commits and the in-flight bound), ``lanes`` (one task per
SMTP connection), ``outcomes`` (what an SMTP outcome means for its row),
``plan`` (the list checks and ``plan_send``), ``send`` (runs of a campaign: start,
resume, finish), ``transport`` (the SMTP server or the embedded one, Ctrl-C),
``offline`` (test and dry run), ``latest`` (``send --latest``), ``reports`` (the
values handed back). The tables live in ``store.campaigns`` and ``store.deliveries``.
"""

from __future__ import annotations

import re

from newsletter.errors import NewsletterError

from .latest import latest_issue
from .offline import dry_run, send_test
from .outcomes import backoff, is_hard_bounce
from .plan import plan_send
from .reports import DryRunReport, SendPlan, SendProgress, SendReport
from .run_state import SendTuning
from .send import retry_due_deferrals, send_issue

__all__ = [
    "DryRunReport",
    "SendPlan",
    "SendProgress",
    "SendReport",
    "SendTuning",
    "backoff",
    "dry_run",
    "is_hard_bounce",
    "latest_issue",
    "parse_rate",
    "plan_send",
    "retry_due_deferrals",
    "send_issue",
    "send_test",
]

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|m|min|h|hour))?\s*$", re.IGNORECASE)
_PER = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600}


def parse_rate(text: str) -> float:
    """``"20"``, ``"20/s"``, ``"600/m"``, ``"5000/h"`` -> messages per second (0 = no limit).

    Raises NewsletterError for anything else.
    """
    match = _RATE.match(text)
    if match is None:
        raise NewsletterError(
            f"{text!r} is not a rate", hint="write e.g. 20/s, 600/m or 5000/h (0: no limit)"
        )
    unit = (match.group(2) or "s").lower()
    return float(match.group(1)) / _PER[unit]
