"""Reading send times: every accepted form, the refusals and their hints, zones and
daylight-saving changes. Time is frozen with time-machine."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from newsletter.errors import ScheduleError
from newsletter.schedule.when import parse_when

BERLIN = ZoneInfo("Europe/Berlin")
Clock = time_machine.Traveller


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-12-01 08:00 Europe/Berlin", datetime(2026, 12, 1, 7, 0, tzinfo=UTC)),
        ("2026-07-01 08:00 Europe/Berlin", datetime(2026, 7, 1, 6, 0, tzinfo=UTC)),
        ("2026-12-01T08:00:00+01:00", datetime(2026, 12, 1, 7, 0, tzinfo=UTC)),
        ("2026-12-01T07:00Z", datetime(2026, 12, 1, 7, 0, tzinfo=UTC)),
        ("2026-12-01 08:00 America/New_York", datetime(2026, 12, 1, 13, 0, tzinfo=UTC)),
        ("2026-12-01 08:00 UTC", datetime(2026, 12, 1, 8, 0, tzinfo=UTC)),
        ("2026-12-01 08:00", datetime(2026, 12, 1, 7, 0, tzinfo=UTC)),  # default zone
        ("  2026-12-01T08:00  ", datetime(2026, 12, 1, 7, 0, tzinfo=UTC)),
        # clocks go back: 02:30 happens twice; the first one is meant
        ("2026-10-25 02:30 Europe/Berlin", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    ],
)
def test_parse_when_reads_what_people_write(text: str, utc: datetime) -> None:
    parsed = parse_when(text, "Europe/Berlin")
    assert parsed.tzinfo is not None
    # (== between zones is always False for a repeated wall time, so compare in UTC)
    assert parsed.astimezone(UTC) == utc


FORMS = "accepted forms:"


@pytest.mark.parametrize(
    ("text", "problem", "advice"),
    [
        ("", "no send time", FORMS),
        ("2026-12-01", "no time of day", FORMS),
        ("next tuesday", "cannot read 'next tuesday' as a send time", FORMS),
        ("tomorrow", "tomorrow needs a time of day", FORMS),
        ("tomorrow 25:00", "is not a time of day", FORMS),
        ("today 13pm", "13 is not an hour of am/pm", FORMS),
        ("+2 weeks", "cannot read", FORMS),
        ("2026-13-01 08:00", "cannot read", FORMS),
        ("2026-12-01 08:00 Mars/Olympus_Mons", "unknown time zone", "IANA name"),
        ("2026-12-01T08:00+01:00 Europe/Berlin", "both an offset and a time zone", "only one"),
        ("2026-03-29 02:30 Europe/Berlin", "does not exist in Europe/Berlin", "daylight-saving"),
    ],
)
def test_parse_when_refuses_what_it_cannot_read_and_says_how(
    text: str, problem: str, advice: str
) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_when(text, "Europe/Berlin")
    assert problem in str(info.value)
    assert advice in str(info.value.hint)


def test_a_time_it_cannot_read_lists_every_accepted_form() -> None:
    with pytest.raises(ScheduleError) as info:
        parse_when("tomorrow at nine", "Europe/Berlin")
    hint = str(info.value.hint)
    for form in ("YYYY-MM-DD HH:MM", "Area/City", "+01:00", "today HH:MM", "tomorrow HH:MM"):
        assert form in hint
    assert "+2h" in hint and "9am" in hint


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("tomorrow 9am", datetime(2026, 11, 28, 8, 0, tzinfo=UTC)),
        ("tomorrow 09:00", datetime(2026, 11, 28, 8, 0, tzinfo=UTC)),
        ("Tomorrow 9:30 PM", datetime(2026, 11, 28, 20, 30, tzinfo=UTC)),
        ("today 12am UTC", datetime(2026, 11, 27, 0, 0, tzinfo=UTC)),
        ("today 18:00 America/New_York", datetime(2026, 11, 27, 23, 0, tzinfo=UTC)),
        ("+90m", datetime(2026, 11, 27, 10, 30, tzinfo=UTC)),
        ("+2h", datetime(2026, 11, 27, 11, 0, tzinfo=UTC)),
        ("+1d", datetime(2026, 11, 28, 9, 0, tzinfo=UTC)),
    ],
)
def test_parse_when_reads_days_and_offsets_from_now(
    text: str, utc: datetime, clock: object
) -> None:
    assert parse_when(text, "Europe/Berlin").astimezone(UTC) == utc


def test_tomorrow_is_the_next_day_where_the_zone_is(clock: Clock) -> None:
    """At 23:30 UTC it is already the next day in Berlin: tomorrow is the day after."""
    clock.move_to(datetime(2026, 11, 27, 23, 30, tzinfo=UTC))
    assert parse_when("tomorrow 08:00", "Europe/Berlin") == datetime(
        2026, 11, 29, 8, 0, tzinfo=BERLIN
    )
