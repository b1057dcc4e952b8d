#!/usr/bin/env python3
"""Independent derivation of this case's expected rows (no sluice involved).

STAGGER_COUNTS: event-by-event stagger simulation (spec §3.3, A3): before a row at ROWTIME
t joins, windows with t0 + 1 min <= t close and emit at ROWTIME t0 + 1 min; the row joins
its key's open window or opens one at t0 = t; the end of input (no flush_at) closes all.
TUMBLING_COUNTS: groups (ticker, event minute, ROWTIME minute), ROWTIME = end of the
ROWTIME minute (A1), all closed by the end of input.
Run: python3 derive.py  (rewrites expected_*.jsonl next to it)
"""
import json
import pathlib
from datetime import datetime, timezone

HERE = pathlib.Path(__file__).resolve().parent
MIN = 60_000


def ms(text):
    d = datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
    return round(d.timestamp() * 1000)


def ts(m):
    return datetime.fromtimestamp(m / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.") + f"{m % 1000:03d}"


rows = [json.loads(l) for l in (HERE / "input.jsonl").read_text().splitlines() if l.strip()]

stagger, open_ = [], {}


def close_until(t):
    for k in [k for k, w in open_.items() if w[0] <= t]:
        end, n = open_.pop(k)
        stagger.append({"ROWTIME": ts(end), "TICKER_SYMBOL": k[1], "EVENT_MINUTE": ts(k[0]), "TICKER_COUNT": n})


for r in rows:
    t = ms(r["rowtime"])
    close_until(t)
    e = ms(r["data"]["EVENT_TIME"])
    k = (e - e % MIN, r["data"]["TICKER_SYMBOL"])
    end, n = open_.get(k, (t + MIN, 0))
    open_[k] = (end, n + 1)
close_until(float("inf"))

groups = {}
for r in rows:
    t, e = ms(r["rowtime"]), ms(r["data"]["EVENT_TIME"])
    k = (t - t % MIN, r["data"]["TICKER_SYMBOL"], e - e % MIN)
    groups[k] = groups.get(k, 0) + 1
tumbling = [{"ROWTIME": ts(k[0] + MIN), "TICKER_SYMBOL": k[1], "EVENT_MINUTE": ts(k[2]), "TICKER_COUNT": n}
            for k, n in sorted(groups.items())]

for name, out in (("expected_stagger.jsonl", stagger), ("expected_tumbling.jsonl", tumbling)):
    out.sort(key=lambda o: o["ROWTIME"])
    (HERE / name).write_text("".join(json.dumps(r) + "\n" for r in out))
