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


def _bench_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_traffic", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cnn_kernels_are_in_by_out_channels_by_9():
    """cnn-a: conv_6 maps conv_5's 48 channels (3072 B of 8x8 int8) to 16: 48 x 16 x 9 = 6912 B
    (it was priced as 16 x 16 x 9 = 2304 B, as if every conv read 16 channels)."""
    p = _bench_module().cnn(1, 4)
    conv_6 = p.op_by_name["conv_6"]
    assert conv_6.inputs == ("f5", "k6") and p.tensors["f5"].size_bytes == 3072
    assert p.tensors["k6"].size_bytes == 48 * 16 * 9
    assert p.tensors["k1"].size_bytes == 16 * 16 * 9  # img's 16 channels to 16
