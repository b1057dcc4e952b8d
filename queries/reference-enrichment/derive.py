#!/usr/bin/env python3
"""Independent derivation of a case's expected rows (no sluice involved).

Stream-to-table joins (spec §1.3, §5.5) for the two pumps of app.sql:
* the reference table is read from the file case.toml names: CSV split on "\n" and ",",
  the first skip_header_lines lines dropped, values not trimmed (A16); JSON one document
  per line, columns taken by their `$.field` mapping (missing field -> NULL);
* COMPLETED_RIDES: each COMPLETED event joined LEFT with the rows whose CITY_NAME equals
  its city; no match (or a NULL on either side: NULL = x is not true) -> one row with
  NULL table columns; COMMISSION = fare * pct / 100, NULL if pct is NULL;
* REGION_REQUESTS: each REQUESTED event joined INNER: one row per matching table row,
  none when nothing matches;
* every output row keeps the event's ROWTIME; other event types produce nothing.
Run: python3 derive.py cases/<case>  (rewrites that case's expected_*.jsonl)
"""
import json
import sys
import pathlib
import tomllib

HERE = pathlib.Path(sys.argv[1]).resolve()  # the case folder
case = tomllib.loads((HERE / "case.toml").read_text())
ref = case["references"][0]
cols = ref["columns"]


def typed(value, sql_type):
    if value is None:
        return None
    return int(value) if sql_type == "INTEGER" else value


text = (HERE / ref["file"]).read_text()
table = []
if ref["format"] == "CSV":
    for line in text.split("\n")[ref.get("skip_header_lines", 0):]:
        if line == "":
            continue
        fields = line.split(",")
        table.append({c["name"]: typed(fields[i], c["sql_type"]) for i, c in enumerate(cols)})
else:
    for line in text.splitlines()[ref.get("skip_header_lines", 0):]:
        if line.strip():
            doc = json.loads(line)
            table.append({c["name"]: typed(doc.get(c["mapping"][2:]), c["sql_type"]) for c in cols})

rows = [json.loads(l) for l in (HERE / "input.jsonl").read_text().splitlines() if l.strip()]
completed, requests = [], []
for r in rows:
    d = r["data"]
    matches = [t for t in table if d.get("city") is not None and t["CITY_NAME"] is not None
               and t["CITY_NAME"] == d["city"]]
    if d["event_type"] == "COMPLETED":
        for t in matches or [dict.fromkeys(c["name"] for c in cols)]:
            pct = t["COMMISSION_PCT"]
            fare = d.get("fare")
            completed.append({"ROWTIME": r["rowtime"], "RIDE_ID": d["ride_id"], "CITY": d.get("city"),
                              "REGION": t["REGION"], "FARE": fare, "COMMISSION_PCT": pct,
                              "COMMISSION": None if pct is None or fare is None else fare * pct / 100})
    elif d["event_type"] == "REQUESTED":
        for t in matches:
            requests.append({"ROWTIME": r["rowtime"], "RIDE_ID": d["ride_id"], "REGION": t["REGION"],
                             "CITY": d["city"], "DRIVER_ID": d["driver_id"], "LAUNCH_YEAR": t["LAUNCH_YEAR"]})

for name, out in (("expected_completed.jsonl", completed), ("expected_requests.jsonl", requests)):
    (HERE / name).write_text("".join(json.dumps(o) + "\n" for o in out))
