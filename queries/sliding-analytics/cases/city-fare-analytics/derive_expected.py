#!/usr/bin/env python3
"""Derives the expected rows of this case from input.jsonl by brute force, straight from
the definitions in NOTES.md (no incremental state): for every input row, the window is
recomputed by scanning all rows that arrived before it. Writes
expected_fare_analytics.jsonl and expected_city_minute.jsonl next to this file."""
import json
import os
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))


def millis(text):
    dt = datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
    return round(dt.timestamp() * 1000)


def text(ms):
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


rows = []
with open(os.path.join(HERE, "input.jsonl")) as f:
    for line in f:
        r = json.loads(line)
        d = r["data"]
        rows.append({"t": millis(r["rowtime"]), **d})

fare_rows = []
for i, cur in enumerate(rows):
    # rows of the same city that arrived up to and including the current one (peers with
    # the same ROWTIME that arrive later are not in the window: spec §3.4 "Peers")
    earlier = [r for r in rows[: i + 1] if r["city"] == cur["city"]]
    last5 = earlier[-5:]  # ROWS 4 PRECEDING: the row and 4 before it (A4)
    last_minute = [r for r in earlier if r["t"] >= cur["t"] - 60_000]  # inclusive (A2)

    # LAG(FARE, 1, 0): the row before the current one inside the window, else the default;
    # a NULL fare found stays NULL
    prev_fare = last5[-2]["fare"] if len(last5) >= 2 else 0.0
    # NTH_VALUE(FARE, 2) FROM LAST: the second newest row's fare, NULL with fewer rows
    second_last = last5[-2]["fare"] if len(last5) >= 2 else None
    # FIRST_VALUE(FARE) (RESPECT NULLS): the oldest row's fare
    first_fare = last_minute[0]["fare"]
    # LAST_VALUE(DRIVER_ID) IGNORE NULLS: the newest non-NULL driver
    drivers = [r["driver_id"] for r in last_minute if r["driver_id"] is not None]
    last_driver = drivers[-1] if drivers else None
    # EXP_AVG(FARE, INTERVAL '10' SECOND): weights 2^(-age/10 s), age = current ROWTIME -
    # the row's ROWTIME, over the rows with a fare (A10: continuous decay)
    weighted = [(2.0 ** (-(cur["t"] - r["t"]) / 10_000), r["fare"]) for r in last_minute if r["fare"] is not None]
    exp_avg = sum(w * x for w, x in weighted) / sum(w for w, _ in weighted) if weighted else None

    fare_rows.append(
        {
            "ROWTIME": text(cur["t"]),
            "CITY": cur["city"],
            "RIDE_ID": cur["ride_id"],
            "FARE": cur["fare"],
            "PREV_FARE": prev_fare,
            "SECOND_LAST_FARE": second_last,
            "FIRST_FARE_1M": first_fare,
            "LAST_DRIVER_1M": last_driver,
            "FARE_EXP_AVG": exp_avg,
        }
    )

# GROUP BY CITY, STEP(ROWTIME BY INTERVAL '1' MINUTE): one row per city and minute, ROWTIME
# = the minute's end (A1); FIRST_VALUE / LAST_VALUE = first / last ride in arrival order
groups = {}
for r in rows:
    start = r["t"] - r["t"] % 60_000
    groups.setdefault((start, r["city"]), []).append(r)
minute_rows = [
    {
        "ROWTIME": text(start + 60_000),
        "CITY": city,
        "FIRST_RIDE": members[0]["ride_id"],
        "LAST_RIDE": members[-1]["ride_id"],
        "RIDES": len(members),
    }
    for (start, city), members in sorted(groups.items())
]

for name, out in [("expected_fare_analytics.jsonl", fare_rows), ("expected_city_minute.jsonl", minute_rows)]:
    with open(os.path.join(HERE, name), "w") as f:
        for r in out:
            f.write(json.dumps(r) + "\n")
