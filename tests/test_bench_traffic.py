"""bench/traffic.py's --json contract on one small graph: a row per budget, every row filled,
the mapper never worse than the baselines nor better than the byte-level bound."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "traffic.py"


def test_traffic_bench_json_rows():
    out = subprocess.run([sys.executable, str(BENCH), "--json", "--graphs", "cnn-a", "--time-limit", "2"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    data = json.loads(out)
    rows = data["rows"]
    assert [r["budget"] for r in rows] == ["M_R", "half", "M_P"]
    assert rows[0]["budget_bytes"] <= rows[1]["budget_bytes"] <= rows[2]["budget_bytes"]
    for r in rows:
        assert None not in (r["lru"], r["belady"], r["ilp"], r["bytes_bound"])
        assert r["bytes_bound"] <= r["ilp"] <= min(r["lru"], r["belady"])
        assert sum(r["lru_parts"].values()) == r["lru"]
        assert r["ilp_status"] == "OPTIMAL" and r["ilp_gap"] == 0.0
    assert rows[2]["ilp"] == 0  # M_P: the minimum peak footprint runs without spilling
    assert data["removed_pct_mean"] is not None and data["rows_total"] == 3
