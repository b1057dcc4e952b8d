#!/usr/bin/env python3
"""Independent derivation of a case's expected rows (no sluice involved).

Implements the tumbling semantics of spec §3.2 for the three pumps of app.sql:
* a row belongs to the bucket [start, start + 60 s) of its ROWTIME, start aligned to the
  epoch (STEP(.. BY INTERVAL '1' MINUTE) and FLOOR(.. TO MINUTE) agree on minutes);
* a result row has ROWTIME = bucket end (A1) and exists only for non-empty groups;
* a bucket is emitted once time reaches its end: a later row, or the end of input
  (without [run] flush_at: everything closes; with flush_at = T: time stops at T);
* COUNT(*) counts rows, COUNT/SUM/MIN/MAX skip NULLs, SUM of nothing but NULLs is NULL;
* NULL grouping keys form one group.
Run: python3 derive.py cases/<case>  (rewrites that case's expected_*.jsonl)
"""
import json
import sys
import pathlib
import tomllib
from datetime import datetime, timezone

HERE = pathlib.Path(sys.argv[1]).resolve()  # the case folder
MINUTE = 60_000


def ms(text):
    if text is None:
        return None
    d = datetime.strptime(text.replace("T", " "), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
    return round(d.timestamp() * 1000)


def ts(m):
    if m is None:
        return None
    d = datetime.fromtimestamp(m / 1000, tz=timezone.utc)
    return d.strftime("%Y-%m-%d %H:%M:%S.") + f"{m % 1000:03d}"


def bucket(m):
    return None if m is None else m - m % MINUTE


case = tomllib.loads((HERE / "case.toml").read_text())
flush = (case.get("run") or {}).get("flush_at")
rows = [json.loads(l) for l in (HERE / "input.jsonl").read_text().splitlines() if l.strip()]
last = max(ms(r["rowtime"]) for r in rows)
horizon = None if flush is None else max(last, ms(flush))


def closed(start):
    return horizon is None or start + MINUTE <= horizon


def groups(keyfn):
    out = {}
    for r in rows:
        rt = ms(r["rowtime"])
        out.setdefault((bucket(rt),) + keyfn(r), []).append(r["data"])
    return out


def emit(name, grouped, make):
    lines = []
    for key in sorted(grouped, key=lambda k: tuple("" if v is None else str(v) for v in k)):
        if closed(key[0]):
            row = {"ROWTIME": ts(key[0] + MINUTE)}
            row.update(make(key, grouped[key]))
            lines.append(row)
    lines.sort(key=lambda r: r["ROWTIME"])
    (HERE / name).write_text("".join(json.dumps(r) + "\n" for r in lines))
    return lines


def fares(ds):
    return [d.get("fare") for d in ds if d.get("fare") is not None]


emit("expected_city_stats.jsonl", groups(lambda r: (r["data"]["city"],)),
     lambda k, ds: {"CITY": k[1], "MINUTE_START": ts(k[0]), "EVENTS": len(ds),
                    "PRICED_EVENTS": len(fares(ds)),
                    "REVENUE": sum(fares(ds)) if fares(ds) else None,
                    "MIN_FARE": min(fares(ds)) if fares(ds) else None,
                    "MAX_FARE": max(fares(ds)) if fares(ds) else None})
emit("expected_event_types.jsonl", groups(lambda r: (r["data"]["event_type"],)),
     lambda k, ds: {"MINUTE_START": ts(k[0]), "EVENT_TYPE": k[1], "EVENTS": len(ds)})
emit("expected_partials.jsonl",
     groups(lambda r: (r["data"]["city"], bucket(ms(r["data"].get("event_time"))))),
     lambda k, ds: {"CITY": k[1], "EVENT_MINUTE": ts(k[2]), "INGEST_MINUTE": ts(k[0]),
                    "EVENTS": len(ds),
                    "COMPLETED": sum(1 for d in ds if d["event_type"] == "COMPLETED")})
