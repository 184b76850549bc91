#!/usr/bin/env python3
"""Refreshes the `served` column and the count of docs/compatibility.md from docs/openapi.json.

The table's rows are the Prefect 3.9.1 server's operations; a row is served when our
OpenAPI document has the same method on the same path (path parameter names ignored).
Usage: python3 scripts/compat.py  (from the repository root)
"""
import json
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
doc = root / "docs" / "compatibility.md"
spec = json.loads((root / "docs" / "openapi.json").read_text())


def shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path.rstrip("/") or "/")


ours = {(shape(p.removeprefix("/api")), m.upper()) for p, ops in spec["paths"].items() for m in ops}
row = re.compile(r"^\| `(?P<path>[^`]+)` \| (?P<method>[A-Z]+) \| (?P<tier>[^|]+) \| (?P<served>[^|]+) \|$")
lines, served, total = [], 0, 0
for line in doc.read_text().splitlines():
    m = row.match(line)
    if m:
        total += 1
        yes = (shape(m["path"]), m["method"]) in ours
        served += yes
        line = f"| `{m['path']}` | {m['method']} | {m['tier'].strip()} | {'yes' if yes else '—'} |"
    lines.append(line)
text = "\n".join(lines) + "\n"
text = re.sub(r"Served: \*\*\d+ of \d+\*\* operations\.", f"Served: **{served} of {total}** operations.", text)
doc.write_text(text)
print(f"served {served} of {total}", file=sys.stderr)
