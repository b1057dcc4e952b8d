"""Derives the expected rows of this case from input.jsonl by the semantics alone.

Tumbling minute counts (GROUP BY STEP(ROWTIME BY INTERVAL '1' MINUTE)) come out
stamped with the minute's end (A1). A join on i.ROWTIME = c.ROWTIME without a window
pairs the rows of one instant; the FULL join keeps an unmatched row of either side at
its own ROWTIME.
"""
import json
from collections import Counter
from datetime import datetime, timedelta

FMT = "%Y-%m-%d %H:%M:%S.%f"


def minute_end(ts):
    t = datetime.strptime(ts, FMT)
    return t.replace(second=0, microsecond=0) + timedelta(minutes=1)


def text(t):
    return t.strftime(FMT)[:-3]


records = [json.loads(line) for line in open("input.jsonl")]
counts = {"impression": Counter(), "click": Counter()}
for r in records:
    kind = r["data"]["event_type"]
    if kind in counts:
        counts[kind][(minute_end(r["rowtime"]), r["data"]["campaign"])] += 1
impressions, clicks = counts["impression"], counts["click"]

ctr, minutes = [], []
for key in sorted(set(impressions) | set(clicks)):
    t, campaign = key
    i, c = impressions.get(key), clicks.get(key)
    if i is not None and c is not None:
        ctr.append({"ROWTIME": text(t), "CAMPAIGN": campaign, "IMPRESSIONS": i, "CLICKS": c, "CTR": c / i})
    minutes.append({"ROWTIME": text(t), "CAMPAIGN": campaign, "IMPRESSIONS": i, "CLICKS": c})

for name, rows in [("expected_ctr.jsonl", ctr), ("expected_minutes.jsonl", minutes)]:
    with open(name, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
