"""Reading a send time as a person writes it (``send --at``): ``parse_when``."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.errors import ScheduleError

__all__ = ["WHEN_FORMS", "parse_when"]

WHEN_FORMS = (
    '"YYYY-MM-DD HH:MM" (workspace time zone), "YYYY-MM-DD HH:MM Area/City" (an IANA zone '
    'or UTC), ISO 8601 with an offset "YYYY-MM-DDTHH:MM+01:00", "today HH:MM" or '
    '"tomorrow HH:MM" (or 9am, 9:30pm; a zone may follow), or from now "+45m", "+2h", "+1d"'
)
_WHEN_HINT = "accepted forms: " + WHEN_FORMS
_RELATIVE = re.compile(r"^\+\s*(\d{1,6})\s*([mhd])$", re.IGNORECASE)
_CLOCK = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*([ap]\.?m\.?)?$", re.IGNORECASE)
_DAY_WORDS = {"today": 0, "tomorrow": 1}
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_ZONE_LIKE = re.compile(r"^(?:[A-Za-z_]+(?:/[A-Za-z0-9_+-]+)+|UTC|GMT|Z)$")


def _zone(name: str) -> ZoneInfo:
    """An IANA zone name (or Z, GMT, UTC) -> ZoneInfo; ScheduleError for an unknown one."""
    try:
        return ZoneInfo("UTC" if name in ("Z", "GMT") else name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown time zone {name!r}", hint="use an IANA name such as Europe/Berlin or UTC"
        ) from None


def _localise(naive: datetime, zone: ZoneInfo) -> datetime:
    """A wall time in ``zone`` -> aware; ScheduleError for a time the zone skips. A time
    it repeats (clocks go back) means the first of the two."""
    local = naive.replace(tzinfo=zone, fold=0)
    # a wall time the zone skips does not survive the round trip through UTC
    if local.astimezone(ZoneInfo("UTC")).astimezone(zone).replace(tzinfo=None) != naive:
        raise ScheduleError(
            f"{naive:%Y-%m-%d %H:%M} does not exist in {zone.key} (the clocks skip that hour)",
            hint="pick a time outside the daylight-saving change",
        )
    return local


def _day_and_clock(text: str, words: list[str], zone: ZoneInfo) -> datetime:
    """``today``/``tomorrow`` and a time of day (``08:00``, ``8am``) in ``zone`` -> aware."""
    clock = _CLOCK.match(" ".join(words[1:]))
    if clock is None:
        raise ScheduleError(f"{text!r}: {words[0]} needs a time of day", hint=_WHEN_HINT)
    hour, minute, half = int(clock.group(1)), int(clock.group(2) or 0), clock.group(3)
    if half is not None:
        if not 1 <= hour <= 12:
            raise ScheduleError(f"{text!r}: {hour} is not an hour of am/pm", hint=_WHEN_HINT)
        hour = hour % 12 + (12 if half.lower().startswith("p") else 0)
    if hour > 23 or minute > 59:
        raise ScheduleError(f"{text!r}: {clock.group(0)} is not a time of day", hint=_WHEN_HINT)
    day = datetime.now(zone).date() + timedelta(days=_DAY_WORDS[words[0].lower()])
    return _localise(datetime.combine(day, time(hour, minute)), zone)


def parse_when(text: str, default_tz: str | ZoneInfo) -> datetime:
    """A send time as a person writes it -> an aware datetime.

    Accepts the forms in ``WHEN_FORMS``: a date and time in ``default_tz`` or followed by
    an IANA zone, ISO 8601 with an offset (``...+01:00``, ``...Z``), ``today`` or
    ``tomorrow`` with a time of day, or ``+N`` minutes/hours/days from now. A time a zone
    skips (the hour clocks go forward) is refused; a time it repeats (clocks go back)
    means the first of the two. Raises ScheduleError listing the accepted forms.
    """
    words = text.strip().split()
    if not words:
        raise ScheduleError("no send time given", hint=_WHEN_HINT)
    relative = _RELATIVE.match(" ".join(words))
    if relative is not None:
        amount = {_UNITS[relative.group(2).lower()]: int(relative.group(1))}
        return datetime.now(ZoneInfo("UTC")) + timedelta(**amount)
    zone: ZoneInfo | None = None
    if len(words) > 1 and _ZONE_LIKE.match(words[-1]):
        zone = _zone(words.pop())
    local_zone = zone or (default_tz if isinstance(default_tz, ZoneInfo) else _zone(default_tz))
    if words[0].lower() in _DAY_WORDS:
        return _day_and_clock(text, words, local_zone)
    stamp = " ".join(words)
    if not re.search(r"\d[T ]\d", stamp):
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", stamp):
            raise ScheduleError(f"{text!r} has no time of day", hint=_WHEN_HINT)
        raise ScheduleError(f"cannot read {text!r} as a send time", hint=_WHEN_HINT)
    try:
        parsed = datetime.fromisoformat(stamp)
    except ValueError:
        raise ScheduleError(f"cannot read {text!r} as a date and time", hint=_WHEN_HINT) from None
    if parsed.tzinfo is not None:
        if zone is not None:
            raise ScheduleError(
                f"{text!r} gives both an offset and a time zone", hint="give only one"
            )
        return parsed
    return _localise(parsed, local_zone)
