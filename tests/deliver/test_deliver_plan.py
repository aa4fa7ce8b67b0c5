"""What a send would do (deliver/plan.py): the plan for the confirmation prompt and the
list checks a send, a test send and a dry run share."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.deliver import plan_send
from newsletter.errors import NewsletterError
from newsletter.workspace import Workspace


def test_plan_counts_the_list(ws: Workspace, issue: Path) -> None:
    plan = plan_send(ws, issue)
    assert (plan.state, plan.recipients, plan.subject) == (
        "new",
        5,
        "Harbour notes for %%first_name%%",
    )


def test_a_retry_of_an_issue_never_sent_and_an_unknown_or_empty_list_are_refused(
    ws: Workspace, issue: Path
) -> None:
    for failed, unknown in ((True, False), (False, True)):
        with pytest.raises(NewsletterError, match="never sent to list 'main'"):
            plan_send(ws, issue, retry_failed=failed, retry_unknown=unknown)
    with pytest.raises(NewsletterError, match=r"no list named 'weekly' \(lists: 'main'\)"):
        plan_send(ws, issue, "weekly")
    with pytest.raises(NewsletterError, match="list name is empty"):
        plan_send(ws, issue, " ")
