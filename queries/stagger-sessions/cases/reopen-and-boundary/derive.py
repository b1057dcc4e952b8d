#!/usr/bin/env python3
"""Independent derivation of this case's expected rows (no sluice involved).

An event-by-event simulation of stagger windows (spec §3.3, A3) for both pumps of app.sql:
* rows are taken in input order; before a row at ROWTIME t is added, every open window
  whose close time t0 + range is <= t closes and emits (so a row at exactly t0 + range
  does not join: membership is [t0, t0 + range));
* the row then joins the open window of its key, or opens one with t0 = t;
* at the end of input time advances to [run] flush_at (or to infinity without it), and
  windows with close time <= that emit; the others emit nothing;
* an emitted row has ROWTIME = close time; SUM skips NULLs (NULL if none), COUNT(*) counts.
Run: python3 derive.py  (rewrites expected_*.jsonl next to it)
"""
import json
import pathlib
import tomllib
from datetime import datetime, timezone

HERE = pathlib.Path(__file__).resolve().parent


def ms(text):
    d = datetime.strptime(text.replace("T", " "), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
    return round(d.timestamp() * 1000)


def ts(m):
    d = datetime.fromtimestamp(m / 1000, tz=timezone.utc)
    return d.strftime("%Y-%m-%d %H:%M:%S.") + f"{m % 1000:03d}"


case = tomllib.loads((HERE / "case.toml").read_text())
flush = (case.get("run") or {}).get("flush_at")
horizon = float("inf") if flush is None else ms(flush)
rows = [json.loads(l) for l in (HERE / "input.jsonl").read_text().splitlines() if l.strip()]


def stagger(keyfn, range_ms, make):
    open_, out = {}, []

    def close_until(t):
        for k in sorted([k for k, w in open_.items() if w["end"] <= t], key=lambda k: open_[k]["end"]):
            w = open_.pop(k)
            out.append(dict({"ROWTIME": ts(w["end"])}, **make(k, w["rows"])))

    for r in rows:
        t = ms(r["rowtime"])
        close_until(t)
        k = keyfn(r["data"])
        open_.setdefault(k, {"end": t + range_ms, "rows": []})["rows"].append(r["data"])
    close_until(horizon)
    out.sort(key=lambda o: o["ROWTIME"])
    return out


def floor(text, unit):
    m = ms(text)
    return m - m % unit


def stats(ds):
    fares = [d["fare"] for d in ds if d["fare"] is not None]
    times = [ms(d["event_time"]) for d in ds]
    return {"EVENTS": len(ds),
            "COMPLETED": sum(d["event_type"] == "COMPLETED" for d in ds),
            "FARES": sum(fares) if fares else None,
            "FIRST_EVENT": ts(min(times)), "LAST_EVENT": ts(max(times))}


def city_row(k, ds):
    s = stats(ds)
    return {"CITY": k[0], "EVENT_MINUTE": ts(k[1]), "EVENTS": s["EVENTS"], "COMPLETED": s["COMPLETED"],
            "CANCELLATIONS": sum(d["event_type"] == "CANCELLATION" for d in ds), "REVENUE": s["FARES"],
            "FIRST_EVENT": s["FIRST_EVENT"], "LAST_EVENT": s["LAST_EVENT"]}


def driver_row(k, ds):
    s = stats(ds)
    return {"DRIVER_ID": k[0], "EVENT_HOUR": ts(k[1]), "EVENTS": s["EVENTS"], "COMPLETED": s["COMPLETED"],
            "EARNINGS": s["FARES"], "FIRST_EVENT": s["FIRST_EVENT"], "LAST_EVENT": s["LAST_EVENT"]}


for name, out in (
    ("expected_city_minutes.jsonl",
     stagger(lambda d: (d["city"], floor(d["event_time"], 60_000)), 60_000, city_row)),
    ("expected_driver_activity.jsonl",
     stagger(lambda d: (d["driver_id"], floor(d["event_time"], 3_600_000)), 120_000, driver_row)),
):
    (HERE / name).write_text("".join(json.dumps(r) + "\n" for r in out))
