"""Bounces and complaints applied to a real SQLite file: suppression, unsigned and forged
reports, the soft-bounce threshold under a frozen clock, the bounce migrations, and a real
send whose bounce and complaint the next send skips.

Sender rules covered: 13, 24, 25.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from bounce_samples import (
    ADA,
    BASE,
    GRACE,
    IDS,
    INES,
    KEY,
    KOFI,
    LINUS,
    consent_actions,
    fixture,
    report_rows,
    sendable,
    soft_report,
    status_of,
)
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from newsletter.audience.bounces.classify import classify
from newsletter.audience.bounces.process import BounceSettings, process_message
from newsletter.audience.bounces.process import Result as Outcome
from newsletter.audience.importing import import_file
from newsletter.config import parse_config
from newsletter.errors import ConfigError
from newsletter.store import Consent, Store, open_store_for
from newsletter.store.bounce_reports import bounce_reports, reports_of
from newsletter.store.engine import alembic_config, make_engine
from newsletter.workspace import Workspace, load_workspace

# --- store effects ------------------------------------------------------------------------------


def test_a_hard_bounce_suppresses_at_once_with_a_record(
    store: Store, settings: BounceSettings
) -> None:
    outcome = process_message(store, fixture("hard-5.1.1.eml"), settings)
    assert (outcome.result, outcome.subscriber_id, outcome.suppressed) == (
        Outcome.APPLIED,
        IDS[GRACE],
        True,
    )
    assert status_of(store, GRACE) == "bounced"
    assert store.is_suppressed(GRACE)
    assert GRACE not in sendable(store) and len(sendable(store)) == 4
    [(action, detail)] = consent_actions(store, IDS[GRACE])
    assert action == "bounce"
    assert detail["status"] == "5.1.1" and detail["kind"] == "hard"
    assert detail["message_id"] == "<20261201081502.7F3A12C0441@mx1.harbour-mail.example.net>"
    [report] = reports_of(store, IDS[GRACE])
    assert report["kind"] == "hard" and report["detail"]["matched_by"] == "verp"
    assert "User unknown" in report["detail"]["diagnostic"]
    # the data-subject export shows the report too
    exported = store.describe(GRACE)
    assert exported is not None and exported["bounce_reports"][0]["kind"] == "hard"


def test_reimporting_the_list_does_not_bring_bounced_or_complained_back(
    ws: Workspace, store: Store, settings: BounceSettings
) -> None:
    process_message(store, fixture("hard-5.1.1.eml"), settings)
    process_message(store, fixture("complaint-arf.eml"), settings)
    report = import_file(
        store, ws.root / "subscribers" / "subscribers.csv", list_name=None, default_list="main"
    )
    assert "2 suppressed" in report.summary()
    assert (status_of(store, GRACE), status_of(store, ADA)) == ("bounced", "complained")
    assert sendable(store) == {LINUS, INES, KOFI}


def test_a_complaint_suppresses_at_once(store: Store, settings: BounceSettings) -> None:
    outcome = process_message(store, fixture("complaint-arf.eml"), settings)
    assert outcome.result is Outcome.APPLIED and outcome.suppressed
    assert status_of(store, ADA) == "complained"
    assert ADA not in sendable(store)
    assert [action for action, _ in consent_actions(store, IDS[ADA])] == ["complaint"]


def test_a_complaint_after_an_unsubscribe_strengthens_the_suppression(
    store: Store, settings: BounceSettings
) -> None:
    store.unsubscribe(ADA, consent=Consent(source="web"))
    outcome = process_message(store, fixture("complaint-arf.eml"), settings)
    assert outcome.suppressed and status_of(store, ADA) == "complained"


UNSIGNED_DSN = b"""From: postmaster@mischief.example
To: bounces@example.org
Subject: Undelivered
Message-ID: <x1@mischief.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mischief.example

Final-Recipient: rfc822; ada.lovelace@example.com
Action: failed
Status: 5.1.1

--b--
"""


@pytest.mark.parametrize(
    ("data", "address"),
    [
        (UNSIGNED_DSN, ADA),
        (fixture("hard-no-verp.eml"), KOFI),
        (fixture("unsigned-arf.eml"), GRACE),
    ],
)
def test_an_unsigned_report_changes_nothing_by_default(
    store: Store,
    settings: BounceSettings,
    caplog: pytest.LogCaptureFixture,
    data: bytes,
    address: str,
) -> None:
    # anyone who can mail the bounce address could write these about anyone
    assert settings.trust_unsigned is False
    with caplog.at_level("INFO", logger="newsletter.audience.bounces"):
        outcome = process_message(store, data, settings, origin="x.eml")
    assert (outcome.result, outcome.subscriber_id, outcome.suppressed) == (
        Outcome.UNSIGNED,
        None,
        False,
    )
    assert status_of(store, address) == "active" and address in sendable(store)
    assert not store.is_suppressed(address)
    assert report_rows(store) == 0 and consent_actions(store, IDS[address]) == []
    assert "x.eml: " in caplog.text
    assert "ignored (unsigned: no VERP address or token of ours)" in caplog.text


def test_trust_unsigned_comes_from_the_bounces_section(ws: Workspace) -> None:
    assert BounceSettings.from_workspace(ws).trust_unsigned is False
    config = ws.root / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    assert "trust_unsigned = false" in text  # the sample spells out the default
    config.write_text(
        text.replace("trust_unsigned = false", "trust_unsigned = true"), encoding="utf-8"
    )
    assert BounceSettings.from_workspace(load_workspace(ws.root)).trust_unsigned is True


def test_a_report_without_verp_finds_a_known_address_when_unsigned_is_trusted(
    store: Store, settings: BounceSettings
) -> None:
    trusting = replace(settings, trust_unsigned=True)
    outcome = process_message(store, fixture("hard-no-verp.eml"), trusting)
    assert (outcome.result, outcome.subscriber_id) == (Outcome.APPLIED, IDS[KOFI])
    assert status_of(store, KOFI) == "bounced"
    assert reports_of(store, IDS[KOFI])[0]["detail"]["matched_by"] == "address"
    assert process_message(store, fixture("unsigned-arf.eml"), trusting).suppressed
    assert status_of(store, GRACE) == "complained"


def test_an_unsigned_report_never_suppresses_an_unknown_address(
    store: Store, settings: BounceSettings
) -> None:
    data = (
        fixture("hard-no-verp.eml")
        .replace(b"kofi.mensah", b"nobody.here")
        .replace(b"Kofi.Mensah", b"Nobody.Here")
    )
    outcome = process_message(store, data, replace(settings, trust_unsigned=True))
    assert outcome.result is Outcome.UNMATCHED
    assert not store.is_suppressed("nobody.here@example.net")
    assert report_rows(store) == 0


def test_a_forged_verp_address_changes_nothing(
    store: Store, settings: BounceSettings, caplog: pytest.LogCaptureFixture
) -> None:
    # the forged report names Ada in Final-Recipient: the fallback must not take it
    outcome = process_message(store, fixture("forged-verp.eml"), settings, origin="forged.eml")
    assert outcome.result is Outcome.FORGED
    assert status_of(store, ADA) == "active" and ADA in sendable(store)
    assert report_rows(store) == 0 and consent_actions(store, IDS[ADA]) == []
    assert "forged.eml: hard report with a forged VERP address" in caplog.text


@pytest.mark.parametrize("name", ["delivered.eml", "auto-reply.eml"])
def test_reports_asking_for_nothing_change_nothing(
    store: Store, settings: BounceSettings, name: str
) -> None:
    assert process_message(store, fixture(name), settings).result is Outcome.IGNORED
    assert report_rows(store) == 0
    assert len(sendable(store)) == 5


def test_processing_the_same_report_twice_records_one_event(
    store: Store, settings: BounceSettings
) -> None:
    data = fixture("hard-5.1.1.eml")
    first = process_message(store, data, settings)
    # the same report again, as another copy (CRLF, from an mbox) and after an unsubscribe
    again = process_message(store, data.replace(b"\n", b"\r\n"), settings)
    assert (first.result, again.result) == (Outcome.APPLIED, Outcome.DUPLICATE)
    assert not again.suppressed
    assert report_rows(store) == 1
    assert [action for action, _ in consent_actions(store, IDS[GRACE])] == ["bounce"]
    soft = fixture("soft-4.2.2.eml")
    results = [process_message(store, soft, settings).result for _ in range(4)]
    assert results == [Outcome.APPLIED] + [Outcome.DUPLICATE] * 3
    assert status_of(store, LINUS) == "active"  # one soft bounce, not four


def test_soft_bounces_suppress_after_the_limit_within_the_window(
    store: Store, settings: BounceSettings
) -> None:
    assert (settings.soft_limit, settings.soft_window) == (3, timedelta(days=30))
    now = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)
    with time_machine.travel(now, tick=False):
        dates = [now - timedelta(days=45), now - timedelta(days=19), now - timedelta(days=10)]
        outcomes = [
            process_message(store, soft_report(n, d), settings) for n, d in enumerate(dates)
        ]
        # the 45-day-old one is outside the window: two within it, one short of the limit
        assert [o.suppressed for o in outcomes] == [False, False, False]
        assert status_of(store, LINUS) == "active" and LINUS in sendable(store)
        third = process_message(store, soft_report(9, now - timedelta(hours=2)), settings)
    assert third.result is Outcome.APPLIED and third.suppressed
    assert status_of(store, LINUS) == "bounced" and LINUS not in sendable(store)
    [(action, detail)] = consent_actions(store, IDS[LINUS])
    assert action == "bounce" and detail["soft_bounces"] == 3 and detail["window_days"] == 30
    assert len(reports_of(store, IDS[LINUS])) == 4


def test_repeated_delay_warnings_about_one_message_count_as_one_soft_bounce(
    store: Store, settings: BounceSettings
) -> None:
    now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    with time_machine.travel(now, tick=False):
        # Exim and Sendmail warn every few hours while they retry the same message
        outcomes = [
            process_message(store, fixture(name), settings)
            for name in ("delayed.eml", "delayed-again.eml")
        ]
        warnings = [
            process_message(store, soft_report(n, now - timedelta(hours=n), original=1), settings)
            for n in range(1, 6)
        ]
    assert [o.result for o in outcomes + warnings] == [Outcome.APPLIED] * 7
    assert not any(o.suppressed for o in outcomes + warnings)
    assert (status_of(store, INES), status_of(store, LINUS)) == ("active", "active")
    # every report is kept, each naming the message it is about
    originals = {r["detail"]["original_message_id"] for r in reports_of(store, IDS[INES])}
    assert originals == {"<2026-12-01-harbour.9@example.org>"}
    assert len(reports_of(store, IDS[LINUS])) == 5
    with time_machine.travel(now, tick=False):
        # two more messages that did not get through: three in the window
        for n in (7, 8):
            last = process_message(store, soft_report(n, now - timedelta(hours=1)), settings)
    assert last.suppressed and status_of(store, LINUS) == "bounced"
    [(action, detail)] = consent_actions(store, IDS[LINUS])
    assert action == "bounce" and detail["soft_bounces"] == 3


def test_soft_reports_without_an_attached_original_count_one_each(
    store: Store, settings: BounceSettings
) -> None:
    now = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)
    with time_machine.travel(now, tick=False):
        outcomes = []
        for n in range(3):
            data = soft_report(n, now - timedelta(hours=n), original=1)
            # the headers part dropped: the report no longer says which message it is about
            bare = data.split(b"Content-Type: text/rfc822-headers", 1)[0]
            outcomes.append(process_message(store, bare, settings))
    assert classify(bare, keys=(KEY,), bounce_address=BASE).original_message_id == ""
    assert [o.suppressed for o in outcomes] == [False, False, True]


def test_soft_bounces_spread_wider_than_the_window_never_suppress(
    store: Store, settings: BounceSettings
) -> None:
    start = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    for month in range(6):  # one soft bounce every 40 days, each processed the day it came
        when = start + timedelta(days=40 * month)
        with time_machine.travel(when + timedelta(hours=1), tick=False):
            assert not process_message(store, soft_report(month, when), settings).suppressed
    assert status_of(store, LINUS) == "active"


def test_a_report_dated_in_the_future_counts_as_now(store: Store, settings: BounceSettings) -> None:
    now = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)
    with time_machine.travel(now, tick=False):
        process_message(store, soft_report(1, now + timedelta(days=365)), settings)
    [report] = reports_of(store, IDS[LINUS])
    assert report["reported_at"] == now


def test_the_soft_limit_is_configurable(store: Store, settings: BounceSettings) -> None:
    once = replace(settings, soft_limit=1)
    outcome = process_message(store, fixture("delayed.eml"), once)
    assert outcome.suppressed and status_of(store, INES) == "bounced"


def test_bounces_config_section_is_validated_with_the_rest(ws: Workspace, tmp_path: Path) -> None:
    data = {
        "publication": {"name": "P", "base_url": "https://p.example.org"},
        "sender": {"name": "P", "address": "p@example.org"},
        "bounces": {
            "soft_limit": 0,
            "soft_window_days": -1,
            "soft_limt": 2,
            "trust_unsigned": "sometimes",
        },
        "send": {"connections": 0},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, tmp_path / "newsletter.toml", {})
    message = str(info.value)
    for field in (
        "bounces.soft_limit",
        "bounces.soft_window_days",
        "bounces.soft_limt",
        "bounces.trust_unsigned",
        "send.connections",
    ):
        assert field in message
    good = parse_config(
        {**data, "bounces": {"soft_limit": 5, "soft_window_days": 7}, "send": {}},
        tmp_path / "newsletter.toml",
        {},
    )
    assert (good.bounces.soft_limit, good.bounces.soft_window_days) == (5, 7)
    assert good.bounces.trust_unsigned is False  # the default: unsigned reports do nothing
    assert ws.config.bounces.soft_limit == 3  # the sample workspace spells out the defaults


def test_erasing_a_subscriber_deletes_their_reports(store: Store, settings: BounceSettings) -> None:
    process_message(store, fixture("hard-5.1.1.eml"), settings)
    assert reports_of(store, IDS[GRACE])
    store.erase(GRACE, consent=Consent(source="cli"))
    assert reports_of(store, IDS[GRACE]) == [] and report_rows(store) == 0
    assert store.is_suppressed(GRACE)
    # the same report again finds nobody to record it for
    assert process_message(store, fixture("hard-5.1.1.eml"), settings).result is Outcome.UNMATCHED


def migrate(url: str, revision: str, *, down: bool = False) -> None:
    """Move the database at ``url`` to ``revision`` with the packaged migrations."""
    from alembic import command

    config = alembic_config()
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, revision)
    finally:
        engine.dispose()


def test_migration_0005_keys_old_reports_by_themselves_and_goes_back(
    ws: Workspace, settings: BounceSettings
) -> None:
    url = ws.database_url
    with open_store_for(ws) as store:
        process_message(store, fixture("hard-5.1.1.eml"), settings)
    # a database that stopped at 0004 recorded soft bounces without original_key
    migrate(url, "0004_bounce_reports", down=True)
    engine = make_engine(url)
    with engine.begin() as conn:
        columns = {column["name"] for column in inspect(conn).get_columns("bounce_reports")}
        assert "original_key" not in columns
        for number in range(2):
            conn.execute(
                text(
                    "INSERT INTO bounce_reports (report_key, subscriber_id, kind, status,"
                    " reported_at, recorded_at) VALUES (:key, 3, 'soft', '4.2.2', :at, :at)"
                ),
                {"key": f"{number:064d}", "at": datetime.now(UTC)},
            )
        # the kind check survived the way down
        with pytest.raises(IntegrityError), conn.begin_nested():
            conn.execute(
                text(
                    "INSERT INTO bounce_reports (report_key, subscriber_id, kind, status,"
                    " reported_at, recorded_at) VALUES ('x', 3, 'odd', '', :at, :at)"
                ),
                {"at": datetime.now(UTC)},
            )
    engine.dispose()
    with open_store_for(ws) as store:  # opening upgrades to the head again
        with store.read() as conn:
            keys = conn.execute(
                select(bounce_reports.c.report_key, bounce_reports.c.original_key).order_by(
                    bounce_reports.c.id
                )
            ).all()
        # every row that went through 0004 (the way down drops the column) names itself
        assert len(keys) == 3 and all(report == original for report, original in keys)
        # the two old reports count as two; a third message reaches the limit
        outcome = process_message(store, soft_report(1, datetime.now(UTC)), settings)
        assert outcome.suppressed and status_of(store, LINUS) == "bounced"


# --- a real send, its bounce and complaint, and the next send ------------------------------------


def dsn_for(mail_from: str, rcpt: str, original: bytes, status: str = "5.1.1") -> bytes:
    """A DSN the way a receiving MTA would write it about ``original`` sent to ``rcpt``."""
    headers = original.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n").decode("ascii")
    return (
        "From: MAILER-DAEMON@mx.example.net\n"
        f"To: {mail_from}\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        f"Message-ID: <dsn-{rcpt}@mx.example.net>\n"
        "Date: Tue, 01 Dec 2026 08:15:02 +0000\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nundeliverable\n\n"
        "--b\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.net\n\n"
        f"Final-Recipient: rfc822; {rcpt}\nAction: failed\nStatus: {status}\n\n"
        f"--b\nContent-Type: text/rfc822-headers\n\n{headers}\n\n--b--\n"
    ).encode()


def arf_for(original: bytes) -> bytes:
    """A feedback-loop report with the whole ``original`` message attached."""
    head = (
        b"From: fbl@isp.example.com\nTo: fbl@example.org\nSubject: complaint\n"
        b"Message-ID: <arf-1@isp.example.com>\nDate: Wed, 02 Dec 2026 17:03:12 +0000\n"
        b"MIME-Version: 1.0\n"
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain\n\nspam report\n\n"
        b"--b\nContent-Type: message/feedback-report\n\n"
        b"Feedback-Type: abuse\nUser-Agent: test/1\nVersion: 1\n\n"
        b"--b\nContent-Type: message/rfc822\n\n"
    )
    return head.replace(b"\n", b"\r\n") + original + b"\r\n--b--\r\n"


def test_after_a_send_bounce_and_complaint_the_next_send_skips_them(
    ws: Workspace, store: Store, settings: BounceSettings
) -> None:
    from ledger_server import FAST, LedgerHandler, LedgerServer, write_issue
    from newsletter.deliver import send_issue

    server = LedgerServer(LedgerHandler())
    server.start()
    try:
        first = write_issue(ws.root, "2026-11-27-harbour")
        send_issue(ws, first, smtp_url=server.url, tuning=FAST)
        handler = server.handler
        sent = {rcpt: (mail_from, data) for mail_from, rcpt, data in handler.received}
        assert set(sent) == set(IDS)
        mail_from, data = sent[GRACE]
        assert process_message(store, dsn_for(mail_from, GRACE, data), settings).suppressed
        assert process_message(store, arf_for(sent[ADA][1]), settings).suppressed
        handler.received.clear()
        second = write_issue(ws.root, "2026-12-04-lighthouse")
        report = send_issue(ws, second, smtp_url=server.url, tuning=FAST)
        assert Counter(rcpt for _, rcpt, _ in handler.received) == Counter(
            dict.fromkeys((LINUS, INES, KOFI), 1)
        )
        assert report.sent == 3
    finally:
        server.stop()
    assert (status_of(store, GRACE), status_of(store, ADA)) == ("bounced", "complained")
