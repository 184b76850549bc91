"""Generate schedules.json: occurrences computed by Prefect 3.9.1's own schedule models.

Run with the conformance venv (python 3.11, prefect==3.9.1):

    /work/shared/conformance/.venv/bin/python crates/prefect-domain/tests/golden/gen_schedules.py

Each case holds the schedule as sent on the wire, what the server model dumps back
(`model_dump(mode="json")`), and for a few (n, start, end) queries the dates
`get_dates` returns, as UTC RFC 3339 strings. The Rust test replays them.
"""

import asyncio
import datetime as dt
import json
import sys
import warnings
from pathlib import Path

import prefect
from prefect.server.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule

warnings.simplefilter("ignore")
UTC = dt.timezone.utc
OUT = Path(__file__).with_name("schedules.json")


def iso(d: dt.datetime) -> str:
    return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


# Starts that straddle the 2026 transitions: US spring forward 2026-03-08 07:00Z,
# US fall back 2026-11-01 06:00Z, EU 2026-03-29 01:00Z / 2026-10-25 01:00Z.
QUERIES = [
    {"n": 10, "start": "2026-03-06T00:00:00Z", "end": None},
    {"n": None, "start": "2026-03-07T12:00:00Z", "end": "2026-03-10T12:00:00Z"},
    {"n": 10, "start": "2026-10-30T00:00:00Z", "end": None},
    {"n": None, "start": "2026-10-31T12:00:00Z", "end": "2026-11-03T00:00:00Z"},
    {"n": 5, "start": "2026-03-28T23:59:59.500000Z", "end": None},
    {"n": 5, "start": "2026-10-24T22:00:00Z", "end": "2026-10-28T00:00:00Z"},
    {"n": None, "start": "2026-06-15T10:20:30.250000Z", "end": None},
    {"n": 3, "start": "2026-03-08T07:10:00Z", "end": None},
    {"n": 3, "start": "2026-11-01T06:20:00Z", "end": None},
    {"n": 4, "start": "2019-12-30T00:00:00Z", "end": None},
]

CASES = []


def case(kind, body, queries=QUERIES):
    CASES.append((kind, body, queries))


TZS = ["UTC", "America/New_York", "Europe/London", "Asia/Kolkata"]

for interval in [3600, 86400, 5400, 129600, "PT1H", "P1D"]:
    for anchor, tz in [
        ("2026-01-01T00:00:00Z", None),
        ("2026-01-01T09:00:00Z", "America/New_York"),
        ("2026-01-01T14:00:00Z", "America/New_York"),
        ("2026-01-01T07:30:00Z", "America/New_York"),
        ("2026-01-01T06:30:00Z", "America/New_York"),
        ("2026-03-07T07:30:00Z", "America/New_York"),
        ("2026-12-01T05:00:00Z", "America/New_York"),
        ("2026-01-01T00:30:00Z", "Europe/London"),
        ("2026-01-01T03:30:00+05:30", None),
    ]:
        body = {"interval": interval, "anchor_date": anchor}
        if tz:
            body["timezone"] = tz
        case("interval", body)

for cron in ["0 9 * * *", "30 2 * * *", "30 1 * * *", "0 0 1-7 * MON", "*/15 * * * *", "0 * * * *", "0 0 * * 0", "15 10 L * *", "0 12 * * 5#2", "0 0 29 2 *", "0 9 * * 1-5", "0 0 1 jan,jul *", "0 6 * * 7"]:
    for tz in [None] + TZS:
        for day_or in [True, False]:
            body = {"cron": cron, "day_or": day_or}
            if tz:
                body["timezone"] = tz
            case("cron", body)

for rule in [
    "FREQ=DAILY",
    "RRULE:FREQ=DAILY;BYHOUR=9;BYMINUTE=0",
    "FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=2;BYMINUTE=30",
    "FREQ=HOURLY;INTERVAL=2",
    "FREQ=MINUTELY;INTERVAL=45",
    "FREQ=DAILY;COUNT=5",
    "FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=1;BYMINUTE=30",
    "FREQ=DAILY;UNTIL=20260309T000000",
    "FREQ=DAILY;COUNT=3;UNTIL=20260310T000000",
    "DTSTART:20260305T023000\nRRULE:FREQ=DAILY",
    "DTSTART:20260305T013000\nRRULE:FREQ=DAILY;COUNT=5",
    "DTSTART:20261030T013000\nRRULE:FREQ=HOURLY;INTERVAL=1",
    "DTSTART;TZID=America/New_York:20260307T023000\nRRULE:FREQ=DAILY;COUNT=4",
    "DTSTART;TZID=Europe/London:20260327T010000\nRRULE:FREQ=DAILY;UNTIL=20260402T000000Z",
    "DTSTART:20260301T090000Z\nRRULE:FREQ=WEEKLY;BYDAY=SU,TU",
    "DTSTART:20260101T000000\nRRULE:FREQ=DAILY;BYHOUR=9\nEXDATE:20260308T090000",
    "DTSTART:20260101T090000\nRRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO\nRDATE:20260310T120000",
]:
    for tz in [None] + TZS:
        body = {"rrule": rule}
        if tz:
            body["timezone"] = tz
        case("rrule", body)

MODELS = {"interval": IntervalSchedule, "cron": CronSchedule, "rrule": RRuleSchedule}


def main() -> None:
    assert prefect.__version__ == "3.9.1", prefect.__version__
    assert sys.version_info[:2] < (3, 13), "interval goldens are for the pendulum path (python < 3.13)"
    out = []
    for kind, body, queries in CASES:
        model = MODELS[kind].model_validate(body)
        results = []
        for q in queries:
            start = parse(q["start"])
            end = parse(q["end"]) if q["end"] else None
            try:
                dates = [iso(d) for d in asyncio.run(model.get_dates(n=q["n"], start=start, end=end))]
                results.append({**q, "dates": dates})
            except Exception as exc:  # a schedule Prefect accepts but cannot expand
                results.append({**q, "error": f"{type(exc).__name__}: {exc}"})
        out.append({"kind": kind, "input": body, "dump": model.model_dump(mode="json"), "queries": results})
    OUT.write_text(json.dumps({"prefect": prefect.__version__, "cases": out}, indent=1) + "\n")
    print(f"{len(out)} cases, {sum(len(c['queries']) for c in out)} queries -> {OUT}")


if __name__ == "__main__":
    main()
