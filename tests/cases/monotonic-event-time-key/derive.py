#!/usr/bin/env python3
"""Independent derivation of this case's expected rows (no sluice involved).

A GROUP BY whose time key k is declared MONOTONIC (the user promises k never decreases):
* rows are read in ROWTIME order; the open group is the one of the current key;
* a row whose key is NULL, or smaller than the open key, breaks the promise: it joins no
  group and becomes an error_stream row (DATA_ROWTIME = its ROWTIME, ROWTIME the same);
* a row with a greater key closes the open group: the group's result row gets that row's
  ROWTIME (never before any of the group's rows: they all came before it);
* no instant can be probed for a non-ROWTIME key, so only a greater key or the end of
  input closes a group; at the end (no flush_at) the last group gets the time the input
  reached: the ROWTIME of the last row it accepted (there are no other bounds here).
Run: python3 derive.py
"""
import json
import pathlib
from datetime import datetime, timezone

HERE = pathlib.Path(__file__).resolve().parent
MINUTE = 60_000


def ms(text, fmt="%Y-%m-%d %H:%M:%S.%f"):
    if text is None:
        return None
    d = datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
    return round(d.timestamp() * 1000)


def ts(m):
    d = datetime.fromtimestamp(m // 1000, tz=timezone.utc)
    return d.strftime("%Y-%m-%d %H:%M:%S.") + f"{m % 1000:03d}"


def minute(m):
    return None if m is None else m - m % MINUTE


rows = [json.loads(l) for l in (HERE / "input.jsonl").read_text().splitlines() if l.strip()]
errors = []


def monotonic_groups(pump, key, select):
    out, open_key, members, stamp = [], None, [], None

    def close():
        out.append({"ROWTIME": ts(stamp), **select(open_key, members)})

    for r in rows:
        rt, k = ms(r["rowtime"]), key(r["data"])
        if k is None or (open_key is not None and k < open_key):
            errors.append({"ROWTIME": ts(rt), "DATA_ROWTIME": ts(rt), "PUMP_NAME": pump})
            continue
        if open_key is not None and k > open_key:
            stamp = max(stamp, rt)
            close()
            open_key, members = None, []
        if open_key is None:
            open_key, stamp = k, rt
        members.append(r["data"])
        stamp = max(stamp, rt)
    if open_key is not None:
        close()
    return out


def write(name, out):
    (HERE / name).write_text("".join(json.dumps(r) + "\n" for r in out))


order_time = lambda d: ms(d["order_time"])
text_time = lambda d: ms(d["text"], "%Y-%m-%d %H:%M:%S")

write(
    "expected_per_minute.jsonl",
    monotonic_groups(
        "MINUTE_PUMP",
        lambda d: minute(order_time(d)),
        lambda k, m: {"ORDER_MINUTE": ts(k), "ORDERS": len(m), "TOTAL": sum(x["amount"] for x in m)},
    ),
)
write(
    "expected_per_instant.jsonl",
    monotonic_groups("INSTANT_PUMP", order_time, lambda k, m: {"ORDER_TIME": ts(k), "ORDERS": len(m)}),
)
write(
    "expected_by_text_minute.jsonl",
    monotonic_groups(
        "TEXT_PUMP", lambda d: minute(text_time(d)), lambda k, m: {"ORDER_MINUTE": ts(k), "ORDERS": len(m)}
    ),
)
write(
    "expected_by_subquery_minute.jsonl",
    monotonic_groups(
        "SUBQUERY_PUMP",
        lambda d: minute(order_time(d)),
        lambda k, m: {"ORDER_MINUTE": ts(k), "TOTAL": sum(x["amount"] for x in m)},
    ),
)
errors.sort(key=lambda e: (e["ROWTIME"], e["PUMP_NAME"]))
write("expected_errors.jsonl", errors)
