#!/usr/bin/env python3
"""Independent derivation of this case's expected rows (no sluice involved).

* `(t - epoch) SECOND` is the exact difference in ms; `/ 10` rounds down to whole ms;
  `FLOOR(.. TO SECOND)` rounds down to whole seconds: the key of t is floor(t / 10 s),
  also for negative t (Python's // rounds toward minus infinity, as the decisions do);
* `(t - 2000-01-01) DAY` is whole days (the rows with N >= 6 are after 2000, so
  truncation = floor); `/ 7` rounds down to a ms (7 does not divide 86_400_000);
  FLOOR(.. TO DAY) then gives floor(days / 7) days: the week number;
* a bucket closes at the first instant its key changes, and its rows are stamped with
  that instant (A1); the end of input closes every bucket.
Run: python3 derive.py
"""
import json
import pathlib
from datetime import datetime, timezone

HERE = pathlib.Path(__file__).resolve().parent
SECOND, DAY = 1000, 86_400_000
Y2000 = 946_684_800_000


def ms(text):
    d = datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
    return round(d.timestamp() * 1000)


def ts(m):
    d = datetime.fromtimestamp(m // 1000, tz=timezone.utc)
    return d.strftime("%Y-%m-%d %H:%M:%S.") + f"{m % 1000:03d}"


records = [json.loads(l) for l in (HERE / "input.jsonl").read_text().splitlines() if l.strip()]
rows = [ms(r["rowtime"]) for r in records]


def buckets(members_of, key, end):
    groups = {}
    for t in members_of:
        groups.setdefault(key(t), []).append(t)
    return [(end(m[0]), m) for m in groups.values()]


def write(name, out):
    out.sort(key=lambda r: r["ROWTIME"])
    (HERE / name).write_text("".join(json.dumps(r) + "\n" for r in out))


ten = buckets(rows, key=lambda t: (t // 10) // SECOND, end=lambda t: (t // (10 * SECOND) + 1) * 10 * SECOND)
write(
    "expected_ten_second.jsonl",
    [{"ROWTIME": ts(e), "FIRST_ROW": ts(min(m)), "LAST_ROW": ts(max(m)), "ROW_COUNT": len(m)} for e, m in ten],
)


def week_key(t):
    days = (t - Y2000) // DAY  # whole days, t >= 2000
    quotient_ms = (days * DAY) // 7
    return quotient_ms // DAY


def week_end(t):
    # the first instant whose key differs: the start of the next 7-day block since 2000
    return Y2000 + (week_key(t) + 1) * 7 * DAY


weeks = buckets([ms(r["rowtime"]) for r in records if r["data"]["n"] >= 6], key=week_key, end=week_end)
write("expected_week.jsonl", [{"ROWTIME": ts(e), "FIRST_ROW": ts(min(m)), "ROW_COUNT": len(m)} for e, m in weeks])
