"""A 5-field cron expression as a systemd ``OnCalendar=`` value (see systemd.time(7)).

Covers what crontabs mostly hold: ``*``, numbers, names, lists, ranges and steps. What
systemd cannot say the same way (a step over a range, day-of-month together with
day-of-week, which cron ORs and systemd ANDs) is refused with a one-line error rather
than turned into a timer that fires at other times.
"""

from __future__ import annotations

from convflow.pipelines.config import ConfigError

DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
FIRST = {"minute": 0, "hour": 0, "day": 1, "month": 1}


def _number(field: str, text: str) -> int:
    low = text.lower()
    if field == "month" and low[:3] in MONTHS:
        return MONTHS.index(low[:3]) + 1
    if field == "weekday" and low[:3] in (d.lower() for d in DAYS):
        return [d.lower() for d in DAYS].index(low[:3])
    if not text.isdigit():
        raise ConfigError(f"cron {field} {text!r}: not a number")
    return int(text)


def _item(field: str, text: str, expr: str) -> str:
    base, _, step = text.partition("/")
    pad = 2 if field in ("minute", "hour") else 1
    if step:
        if base != "*" and "-" in base:
            raise ConfigError(
                f"--print-systemd: {expr!r}: systemd has no step over a range ({text}); "
                "list the values instead"
            )
        start = FIRST[field] if base == "*" else _number(field, base)
        return f"{start:0{pad}d}/{int(step)}"
    if "-" in base:
        a, b = (_number(field, x) for x in base.split("-", 1))
        return f"{a:0{pad}d}..{b:0{pad}d}"
    return f"{_number(field, base):0{pad}d}"


def _weekday(text: str) -> str:
    out = []
    for item in text.split(","):
        if "/" in item:
            raise ConfigError(f"--print-systemd: weekday {item!r}: steps are not supported")
        if "-" in item:
            a, b = (_number("weekday", x) for x in item.split("-", 1))
            out.append(f"{DAYS[a]}..{DAYS[b]}")
        else:
            out.append(DAYS[_number("weekday", item)])
    return ",".join(out)


def _field(field: str, text: str, expr: str) -> str:
    if text == "*":
        return "*"
    return ",".join(_item(field, item, expr) for item in text.split(","))


def to_oncalendar(expr: str, timezone: str) -> str:
    """``"30 2 * * 1-5"``, ``"Europe/Berlin"`` -> ``"Mon..Fri *-*-* 02:30:00 Europe/Berlin"``.

    Raises:
        ConfigError: not 5 fields, or a construct systemd cannot express the same way.
    """
    fields = expr.split()
    if len(fields) != 5:
        raise ConfigError(f"--print-systemd: {expr!r}: expected 5 cron fields")
    minute, hour, day, month, weekday = fields
    if day != "*" and weekday != "*":
        raise ConfigError(
            f"--print-systemd: {expr!r}: cron runs when day-of-month OR day-of-week matches, "
            "systemd when both do; use one of them, or `convflow schedule` in a service"
        )
    date = f"*-{_field('month', month, expr)}-{_field('day', day, expr)}"
    time = f"{_field('hour', hour, expr)}:{_field('minute', minute, expr)}:00"
    days = f"{_weekday(weekday)} " if weekday != "*" else ""
    return f"{days}{date} {time} {timezone}"
