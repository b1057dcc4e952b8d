#!/usr/bin/env python3
"""Independent derivation of this case's expected rows (no sluice involved).

Semantics (spec §3.2, §1.4, decision A1, and the interval decisions in NOTES.md):
* `(t - epoch) SECOND` is the exact difference in milliseconds (SECOND keeps the
  fraction); `(t - epoch) MINUTE` is whole minutes, truncated toward zero;
* `interval / n` is rounded down to whole milliseconds; `FLOOR(i TO SECOND|MINUTE)` rounds
  down to whole seconds / minutes; `interval * n` is exact for an integer n;
* a GROUP BY bucket is the set of rows sharing every ROWTIME key; it is emitted when time
  passes its end (the first instant where one of those keys changes), at that end (A1);
* the end of input (no flush_at) closes every bucket.
Run: python3 derive.py   (rewrites expected*.jsonl next to it)
"""
import json
import pathlib
from datetime import datetime, timezone

HERE = pathlib.Path(__file__).resolve().parent
SECOND, MINUTE = 1000, 60_000


def ms(text):
    d = datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
    return round(d.timestamp() * 1000)


def ts(m):
    d = datetime.fromtimestamp(m // 1000, tz=timezone.utc)
    return d.strftime("%Y-%m-%d %H:%M:%S.") + f"{m % 1000:03d}"


def floor_div(a, b):
    return a // b  # Python's // rounds toward minus infinity


rows = [json.loads(l) for l in (HERE / "input.jsonl").read_text().splitlines() if l.strip()]
rows = [(ms(r["rowtime"]), r["data"]["ticker"]) for r in rows]


def tumbling(key, end, select):
    """Groups rows by (time key, other keys); one output row per group at its bucket end."""
    groups = {}
    for t, ticker in rows:
        groups.setdefault(key(t, ticker), []).append((t, ticker))
    out = []
    for k, members in groups.items():
        out.append({"ROWTIME": ts(end(members[0][0])), **select(k, members)})
    return sorted(out, key=lambda r: r["ROWTIME"])


def write(name, out):
    (HERE / name).write_text("".join(json.dumps(r) + "\n" for r in out))


# STREAM_PUMP: FLOOR(ROWTIME TO MINUTE) and FLOOR((ROWTIME - epoch) SECOND / 10 TO SECOND).
# The 10-second key is floor(floor(t / 10) / 1000 ms) seconds = the t // 10 s bucket; it
# is finer than the minute, so the bucket ends at the next multiple of 10 s.
write(
    "expected.jsonl",
    tumbling(
        key=lambda t, k: (floor_div(t, MINUTE), floor_div(floor_div(t, 10), SECOND), k),
        end=lambda t: (floor_div(t, 10 * SECOND) + 1) * 10 * SECOND,
        select=lambda k, m: {
            "INGEST_TIME": ts(k[0] * MINUTE),
            "TICKER_SYMBOL": k[2],
            "TICKER_SYMBOL_COUNT": len(m),
        },
    ),
)

# TWO_MINUTE_PUMP: whole minutes since the epoch (t >= 0: truncation = floor), / 2 in ms
# (exact: a minute is an even number of ms), floored to the minute.
write(
    "expected_two_minute.jsonl",
    tumbling(
        key=lambda t, k: (floor_div(floor_div(t, MINUTE) * MINUTE // 2, MINUTE),),
        end=lambda t: (floor_div(t, 2 * MINUTE) + 1) * 2 * MINUTE,
        select=lambda k, m: {
            "FIRST_ROW": ts(min(t for t, _ in m)),
            "LAST_ROW": ts(max(t for t, _ in m)),
            "ROW_COUNT": len(m),
        },
    ),
)

# HALF_MINUTE_PUMP: key floor(floor(t / 30) / 1000 ms) seconds; epoch + key * 30 is the
# start of the 30-second bucket.
write(
    "expected_half_minute.jsonl",
    tumbling(
        key=lambda t, k: (floor_div(floor_div(t, 30), SECOND), k),
        end=lambda t: (floor_div(t, 30 * SECOND) + 1) * 30 * SECOND,
        select=lambda k, m: {
            "BUCKET_START": ts(k[0] * SECOND * 30),
            "TICKER_SYMBOL": k[1],
            "ROW_COUNT": len(m),
        },
    ),
)
