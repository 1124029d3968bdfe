"""Sweep engines: one spec run serially in this process (the baseline), on the local process pool, and
on a Dask LocalCluster of worker processes started here; wall times, ratios to the baseline, and a
check that all three wrote byte-identical results.csv / results.json / pareto.png.

Each run starts from an empty output folder (no journal), so every point is evaluated. The pool and
the cluster pay for starting workers (each imports pimc); the ratio shows when that pays off.

Usage: python bench/sweep_engines.py [SPEC.toml] [--workers 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from pimc.sweep import load_spec, run_sweep

DEFAULT_SPEC = Path(__file__).resolve().parent.parent / "examples" / "sweeps" / "meadow_bandwidth.toml"
OUTPUTS = ("results.csv", "results.json", "pareto.png")


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from distributed import LocalCluster

    spec = load_spec(args.spec)
    with tempfile.TemporaryDirectory() as tmp:
        out = {name: Path(tmp) / name for name in ("serial", "pool", "dask")}
        wall = {"serial": timed(lambda: run_sweep(spec, out["serial"], workers=1)),
                "pool": timed(lambda: run_sweep(spec, out["pool"], workers=args.workers))}
        start = time.perf_counter()
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            up = time.perf_counter() - start
            wall["dask"] = up + timed(lambda: run_sweep(spec, out["dask"], dask=cluster.scheduler_address))
        identical = all((out["serial"] / f).read_bytes() == (out[e] / f).read_bytes()
                        for e in ("pool", "dask") for f in OUTPUTS)
    result = {
        "spec": str(args.spec), "points": len(spec.points), "workers": args.workers,
        "wall_s": wall, "dask_cluster_start_s": up,
        "speedup_vs_serial": {e: wall["serial"] / wall[e] for e in ("pool", "dask")},
        "identical_outputs": identical,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{spec.name}: {len(spec.points)} points, {args.workers} workers")
    for engine, seconds in wall.items():
        ratio = wall["serial"] / seconds
        print(f"  {engine:6} {seconds:7.1f} s   x{ratio:.2f} vs serial" + (f"  (cluster start {up:.1f} s)" if engine == "dask" else ""))
    print(f"  identical results.csv/results.json/pareto.png: {identical}")


if __name__ == "__main__":
    main()
