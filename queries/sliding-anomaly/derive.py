#!/usr/bin/env python3
"""Independent derivation of a case's expected rows (no sluice involved).

Implements the sliding-window semantics of spec §3.4 for the two pumps of app.sql:
* WHERE event_type = 'COMPLETED' runs first; other rows never enter a window;
* each remaining row emits one row at once, with its own ROWTIME;
* RANGE INTERVAL '1' MINUTE PRECEDING: earlier-arrived rows of the same city (plus the
  row itself) with ROWTIME >= t - 60 s; the lower bound is inclusive (A2); peers with the
  same ROWTIME that arrive later are not in the window (rows are taken in arrival order);
* ROWS 4 PRECEDING: the row and up to 4 earlier-arrived rows of the same city (A4);
* STDDEV_SAMP is NULL for one row; aggregates are exact here (fares are multiples of 0.25,
  computed with fractions; only the square root is a float);
* FARE_ALERTS keeps rows with rides >= 5 and fare > avg + 1.5 * stddev (NULL -> dropped).
Prints each row's threshold margin and refuses values within 1e-3 of the threshold, so
float rounding cannot flip an alert.
Run: python3 derive.py cases/<case>  (rewrites that case's expected_*.jsonl)
"""
import json
import sys
import math
import pathlib
from datetime import datetime, timezone
from fractions import Fraction as F

HERE = pathlib.Path(sys.argv[1]).resolve()  # the case folder


def ms(text):
    d = datetime.strptime(text.replace("T", " "), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
    return round(d.timestamp() * 1000)


rows = [json.loads(l) for l in (HERE / "input.jsonl").read_text().splitlines() if l.strip()]
done = [(ms(r["rowtime"]), r["rowtime"], r["data"]) for r in rows if r["data"]["event_type"] == "COMPLETED"]

trends, alerts = [], []
for i, (t, rt, d) in enumerate(done):
    same = [(tj, F(dj["fare"])) for tj, _, dj in done[: i + 1] if dj["city"] == d["city"]]
    minute = [f for tj, f in same if tj >= t - 60_000]
    five = [f for _, f in same[-5:]]
    n = len(minute)
    avg = sum(minute) / n
    var = sum((f - avg) ** 2 for f in minute) / (n - 1) if n > 1 else None
    sd = None if var is None else math.sqrt(var)
    trends.append({"ROWTIME": rt, "CITY": d["city"], "RIDE_ID": d["ride_id"], "FARE": d["fare"],
                   "AVG_FARE_1M": float(avg), "STDDEV_FARE_1M": sd, "RIDES_1M": n,
                   "AVG_FARE_LAST5": float(sum(five) / len(five)), "MAX_FARE_LAST5": float(max(five))})
    if sd is not None:
        threshold = float(avg) + 1.5 * sd
        margin = d["fare"] - threshold
        print(f"{rt} {d['city']:8} {d['ride_id']:6} n={n} fare={d['fare']} threshold={threshold:.4f} margin={margin:+.4f}")
        assert abs(margin) > 1e-3, "too close to the threshold"
        if n >= 5 and margin > 0:
            alerts.append({"ROWTIME": rt, "CITY": d["city"], "RIDE_ID": d["ride_id"], "FARE": d["fare"],
                           "AVG_FARE": float(avg), "STDDEV_FARE": sd, "RIDES": n})

for name, out in (("expected_trends.jsonl", trends), ("expected_alerts.jsonl", alerts)):
    (HERE / name).write_text("".join(json.dumps(r) + "\n" for r in out))
