"""When cycles run: a 5-field cron expression, its next fire time, and the service's scheduler.

The expression is the classic crontab one, read in UTC (no daylight-saving gaps or repeats):
``minute hour day-of-month month day-of-week``. Each field is ``*``, a number, a range ``a-b``, a
step ``*/n`` or ``a-b/n``, or a comma list of those; months and weekdays may be named (``jan``,
``mon``); weekday 0 and 7 are both Sunday. As in cron, when both day fields are restricted a day
matches when *either* does ("the 1st, and every Monday"). ``@hourly``, ``@daily``, ``@weekly``
(Sunday midnight), ``@monthly`` and ``@yearly`` stand for their usual expressions.

>>> import datetime as dt
>>> weekly = Cron.parse("0 6 * * mon")            # Mondays at 06:00 UTC
>>> weekly.next_after(dt.datetime(2026, 1, 1, 12, 0))   # a Thursday
datetime.datetime(2026, 1, 5, 6, 0)
>>> Cron.parse("*/15 * * * *").next_after(dt.datetime(2026, 1, 1, 12, 7, 30))
datetime.datetime(2026, 1, 1, 12, 15)
>>> Cron.parse("0 0 1,15 * *").next_after(dt.datetime(2026, 1, 15, 0, 0))
datetime.datetime(2026, 2, 1, 0, 0)
>>> Cron.parse("@daily").next_after(dt.datetime(2026, 12, 31, 23, 59))
datetime.datetime(2027, 1, 1, 0, 0)
>>> Cron.parse("0 0 31 2 *").next_after(dt.datetime(2026, 1, 1))
Traceback (most recent call last):
...
churnguard.operate.schedule.CronError: cron '0 0 31 2 *' never fires (no such day in those months)
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from churnguard.errors import ChurnguardError

log = logging.getLogger("churnguard.operate")

MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names for lowest.. in order)
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
# No valid expression waits longer than this for its next fire (29 February: 8 years apart at
# a century's turn); longer means it never fires.
_HORIZON = dt.timedelta(days=366 * 9)


class CronError(ChurnguardError, ValueError):
    """A cron expression that cannot be read, or that never fires."""

    code = "invalid_schedule"


def _value(text: str, low: int, names: tuple[str, ...], where: str) -> int:
    if text.isdigit():
        return int(text)
    lowered = text.lower()
    if lowered in names:
        return low + names.index(lowered)
    raise CronError(f"{where}: {text!r} is not a number" + (
        f" or a name ({', '.join(names)})" if names else ""))


def _field(text: str, index: int, expression: str) -> frozenset[int]:
    """The values one field allows.

    >>> sorted(_field("1-10/3,20", 0, "x"))
    [1, 4, 7, 10, 20]
    >>> sorted(_field("sat-sun", 4, "x"))
    Traceback (most recent call last):
    ...
    churnguard.operate.schedule.CronError: cron 'x', day of week: range 'sat-sun' runs backwards
    """
    name, low, high, names = _FIELDS[index]
    where = f"cron {expression!r}, {name}"
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{where}: an empty item in {text!r}")
        body, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{where}: step {step_text!r} must be a whole number >= 1")
            step = int(step_text)
        if body == "*":
            start, stop = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            start, stop = _value(a, low, names, where), _value(b, low, names, where)
            if stop < start:
                raise CronError(f"{where}: range {body!r} runs backwards")
        else:
            start = _value(body, low, names, where)
            stop = high if slash else start  # "5/10": from 5 on, every 10
        for v in (start, stop):
            if not low <= v <= high:
                raise CronError(f"{where}: {v} is outside {low}-{high}")
        values.update(range(start, stop + 1, step))
    if index == 4 and 7 in values:  # 7 is Sunday too
        values.discard(7)
        values.add(0)
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression (UTC); :meth:`next_after` gives its next fire time."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month is '*'
    any_weekday: bool  # day of week is '*'

    @classmethod
    def parse(cls, expression: str) -> Cron:
        """Read a 5-field expression or a macro (module docstring); :class:`CronError` says
        which field is wrong and why.

        >>> Cron.parse("0 6 * *")
        Traceback (most recent call last):
        ...
        churnguard.operate.schedule.CronError: cron '0 6 * *': 4 fields; write 5: minute hour day-of-month month day-of-week, e.g. '0 6 * * mon' (Mondays at 06:00 UTC)
        """
        text = " ".join(str(expression).split())
        spelled = MACROS.get(text.lower(), text)
        fields = spelled.split(" ")
        if len(fields) != 5 or not text:
            raise CronError(f"cron {text!r}: {len(fields) if text else 0} fields; write 5: "
                            "minute hour day-of-month month day-of-week, e.g. '0 6 * * mon' "
                            "(Mondays at 06:00 UTC)")
        parsed = [_field(f, i, text) for i, f in enumerate(fields)]
        return cls(expression=text, minutes=parsed[0], hours=parsed[1], days=parsed[2],
                   months=parsed[3], weekdays=parsed[4], any_day=fields[2].startswith("*"),
                   any_weekday=fields[4].startswith("*"))

    def _day_matches(self, day: dt.datetime) -> bool:
        in_month = day.day in self.days
        weekday = (day.weekday() + 1) % 7  # Python: Monday 0; cron: Sunday 0
        in_week = weekday in self.weekdays
        if self.any_day or self.any_weekday:  # one side is '*': the other decides
            return in_month and in_week
        return in_month or in_week

    def matches(self, when: dt.datetime) -> bool:
        """Whether the expression fires at the minute of ``when``.

        >>> Cron.parse("0 0 13 * fri").matches(dt.datetime(2026, 2, 13))  # the 13th (a Friday)
        True
        >>> Cron.parse("0 0 13 * fri").matches(dt.datetime(2026, 2, 20))  # or any Friday
        True
        """
        return (when.minute in self.minutes and when.hour in self.hours
                and when.month in self.months and self._day_matches(when))

    def next_after(self, when: dt.datetime) -> dt.datetime:
        """The first fire time strictly after ``when`` (naive UTC; an aware time is converted),
        to the minute."""
        if when.tzinfo is not None:
            when = when.astimezone(dt.UTC).replace(tzinfo=None)
        t = when.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        limit = t + _HORIZON
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + dt.timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + dt.timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += dt.timedelta(minutes=1)
            else:
                return t
        raise CronError(f"cron {self.expression!r} never fires (no such day in those months)")


def utc_now() -> dt.datetime:
    """The wall clock, naive UTC (the scheduler's default clock)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Scheduler:
    """Runs ``job(fire_time)`` in a background thread each time ``cron`` fires.

    ``now`` is the clock (injectable: tests move it by hand) and ``poll_s`` how often the thread
    looks at it; the thread sleeps on an event, so :meth:`stop` ends it at once. A fire that
    comes due while a job is still running is not queued: the next one after the job ends is
    the next fire (a slow cycle never piles up behind itself). A job's exception is logged and
    kept in :attr:`last_error`; the schedule goes on.
    """

    def __init__(self, cron: Cron, job: Callable[[dt.datetime], object], *,
                 now: Callable[[], dt.datetime] = utc_now, poll_s: float = 15.0) -> None:
        self.cron, self.job, self.now, self.poll_s = cron, job, now, poll_s
        self.runs = 0
        self.last_error: str | None = None
        self.next_fire: dt.datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.next_fire = self.cron.next_after(self.now())
        log.info("cycles scheduled by %r; the next at %s UTC", self.cron.expression,
                 self.next_fire)
        self._thread = threading.Thread(target=self._loop, name="churnguard-cycle-schedule",
                                        daemon=True)
        self._thread.start()

    def tick(self) -> bool:
        """Run the job if a fire is due now; whether it ran."""
        assert self.next_fire is not None, "start() first"
        if self.now() < self.next_fire:
            return False
        fire = self.next_fire
        try:
            self.job(fire)
            self.last_error = None
        except Exception as exc:  # noqa: BLE001 - the schedule outlives one failed cycle
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("the cycle scheduled for %s UTC failed", fire)
        finally:
            self.runs += 1
            self.next_fire = self.cron.next_after(max(self.now(), fire))
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.poll_s)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop looking at the clock; waits up to ``timeout`` seconds for a running job."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)


__all__ = ["MACROS", "Cron", "CronError", "Scheduler", "utc_now"]
