"""SendReport's summary line: this run's counts, what the campaign has left, what to do."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newsletter.deliver.reports import FINISHED, WAITING, SendReport


def report(**fields: Any) -> SendReport:
    return SendReport(
        issue_dir=Path("issues/2026-11-27-harbour"),
        list_name="main",
        subject="Harbour news",
        target="smtp://127.0.0.1:2525",
        **fields,
    )


def test_a_first_run_that_sent_everything_needs_no_campaign_part() -> None:
    done = report(sent=5, campaign_sent=5, campaign_total=5, state=FINISHED)
    assert done.summary() == "sent 5, failed 0, deferred 0, skipped 0, unknown 0"


def test_a_resumed_run_shows_what_the_campaign_has_left_and_when_deferred_rows_are_due() -> None:
    resumed = report(
        sent=211,
        resumed=True,
        campaign_sent=2611,
        campaign_deferred=389,
        campaign_unknown=2,
        campaign_total=3002,
        state=WAITING,
        next_attempt_at=datetime(2026, 11, 28, 9, 30, tzinfo=UTC),
    )
    assert resumed.summary() == (
        "sent 211, failed 0, deferred 0, skipped 0, unknown 0 "
        "(campaign: 2611 of 3002 sent, 389 deferred, 2 unknown); "
        "deferred rows are due again from 2026-11-28 09:30 UTC; "
        "2 got no reply after their data (some may have arrived): "
        "send again with --retry-unknown to resend them"
    )


def test_an_interrupted_first_run_shows_how_far_the_campaign_got() -> None:
    stopped = report(sent=150, campaign_sent=150, campaign_total=3000, interrupted=True)
    assert stopped.summary().endswith("(campaign: 150 of 3000 sent)")


def test_a_first_run_with_failures_counts_them_for_the_campaign_too() -> None:
    failed = report(sent=4, failed=1, campaign_sent=4, campaign_failed=1, campaign_total=5)
    assert failed.summary() == "sent 4, failed 1, deferred 0, skipped 0, unknown 0"
    retried = report(
        sent=1, resumed=True, requeued=1, campaign_sent=5, campaign_failed=0, campaign_total=5
    )
    assert retried.summary().endswith("(campaign: 5 of 5 sent)")
    assert "--retry-unknown" not in retried.summary()


def test_the_failures_listed_are_the_first_of_the_campaign_or_of_a_test() -> None:
    campaign = report(failed=1, campaign_failed=30, resumed=True)
    assert campaign.failures_total == 30
    test = report(failed=3, campaign_failed=0, test=True)
    assert test.failures_total == 3
    assert test.summary() == "test send: sent 0, failed 3, deferred 0, skipped 0, unknown 0"
