"""When a recurring series comes out: ``every`` text -> RRULE, and its occurrences.

``every`` is an RFC 5545 RRULE (``FREQ=WEEKLY;BYDAY=FR;BYHOUR=9;BYMINUTE=0``) read by
python-dateutil, or a friendlier form translated to one: ``"friday 09:00"``,
``"monday,thursday 07:30"``, ``"daily 06:00"``, ``"weekdays 07:00"``. Occurrences are
wall-clock times in the publication's zone, so 09:00 stays 09:00 across DST changes.
Also ``parse_duration`` for ``review_before`` ("2h", "30m", "1d", "1h30m").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import HOURLY, rrule, rrulestr

__all__ = ["next_occurrence", "occurrences_between", "parse_duration", "parse_every"]

# rules without their own DTSTART count from here (a Monday, midnight), so a rule
# without BYHOUR or with INTERVAL=2 means the same thing on every machine and every day
ANCHOR = datetime(2020, 1, 6, 0, 0)
_DAYS = {
    "monday": "MO",
    "tuesday": "TU",
    "wednesday": "WE",
    "thursday": "TH",
    "friday": "FR",
    "saturday": "SA",
    "sunday": "SU",
}
_GROUPS = {"daily": "", "weekdays": "MO,TU,WE,TH,FR", "weekends": "SA,SU"}
_FRIENDLY = re.compile(r"^([a-z, ]+?)\s+(?:at\s+)?(\d{1,2}):(\d{2})$")
_DURATION = re.compile(r"(\d+)\s*([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def _day_code(word: str) -> str:
    """``"fri"`` / ``"friday"`` -> ``"FR"``; ValueError for anything else."""
    word = word.strip()
    matches = {code for name, code in _DAYS.items() if len(word) >= 2 and name.startswith(word)}
    if len(matches) != 1:
        raise ValueError(f"{word!r} is not a day of the week")
    return matches.pop()


def _friendly_rule(text: str) -> str | None:
    """``"friday 09:00"`` -> the RRULE it means; None when ``text`` is not in that form."""
    match = _FRIENDLY.match(" ".join(text.lower().split()))
    if match is None:
        return None
    days, hour, minute = match[1].strip(), int(match[2]), int(match[3])
    if hour > 23 or minute > 59:
        raise ValueError(f"{match[2]}:{match[3]} is not a time of day")
    if days in _GROUPS:
        codes = _GROUPS[days]
    else:
        codes = ",".join(_day_code(word) for word in days.split(",") if word.strip())
    if not codes:
        return f"FREQ=DAILY;BYHOUR={hour};BYMINUTE={minute};BYSECOND=0"
    return f"FREQ=WEEKLY;BYDAY={codes};BYHOUR={hour};BYMINUTE={minute};BYSECOND=0"


def _build(rule_text: str) -> rrule:
    """The dateutil rule for an RRULE text (counted from ANCHOR unless it has a DTSTART)."""
    rule = rrulestr(rule_text, dtstart=ANCHOR, ignoretz=True)
    if not isinstance(rule, rrule):
        raise ValueError("give one RRULE, not a set of rules")
    return rule


def parse_every(text: str) -> str:
    """``every`` as written -> the RRULE text it means (checked by dateutil).

    Raises ValueError saying what is wrong: not a rule, a rule more often than hourly,
    or a rule with no occurrence at all.
    """
    text = text.strip()
    if not text:
        raise ValueError("is empty; write an RRULE or a form like 'friday 09:00'")
    friendly = _friendly_rule(text)
    rule_text = friendly or text.removeprefix("RRULE:")
    if friendly is None and "FREQ=" not in rule_text.upper():
        raise ValueError(
            f"{text!r} is neither an RRULE (FREQ=WEEKLY;BYDAY=FR;BYHOUR=9) nor a form like "
            "'friday 09:00', 'monday,thursday 07:30' or 'daily 06:00'"
        )
    try:
        rule = _build(rule_text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{text!r} is not a valid RRULE ({exc})") from None
    if rule._freq > HOURLY:
        raise ValueError(f"{text!r} comes more often than hourly; a newsletter cannot")
    if rule.after(ANCHOR, inc=True) is None:
        raise ValueError(f"{text!r} never occurs")
    return rule_text


def _naive_local(moment: datetime, zone: ZoneInfo) -> datetime:
    """An aware moment -> the wall-clock time in ``zone``, without tzinfo."""
    return moment.astimezone(zone).replace(tzinfo=None)


def _aware(naive: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time in ``zone`` -> aware UTC (a skipped time lands an hour later)."""
    return naive.replace(tzinfo=zone).astimezone(UTC)


def next_occurrence(rule_text: str, zone: ZoneInfo, after: datetime) -> datetime | None:
    """The first occurrence strictly after the aware ``after`` -> aware UTC, or None."""
    found = _build(rule_text).after(_naive_local(after, zone), inc=False)
    return None if found is None else _aware(found, zone)


def occurrences_between(
    rule_text: str, zone: ZoneInfo, start: datetime, end: datetime
) -> Iterator[datetime]:
    """Occurrences in (``start``, ``end``] (aware) -> aware UTC datetimes, oldest first."""
    rule = _build(rule_text)
    local_start, local_end = _naive_local(start, zone), _naive_local(end, zone)
    for found in rule.between(local_start, local_end, inc=True):
        moment = _aware(found, zone)
        if start < moment <= end:
            yield moment


def parse_duration(text: str) -> timedelta:
    """``"2h"``, ``"30m"``, ``"1d"``, ``"1h30m"`` -> timedelta; ValueError otherwise."""
    compact = "".join(text.lower().split())
    parts = _DURATION.findall(compact)
    if not compact or "".join(number + unit for number, unit in parts) != compact:
        raise ValueError(f"{text!r} is not a duration like '2h', '30m' or '1d'")
    return timedelta(**{_UNITS[unit]: int(number) for number, unit in parts})
