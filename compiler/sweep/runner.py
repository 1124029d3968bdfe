"""Run a sweep: evaluate the points the journal does not hold yet, on a local process pool or a Dask
cluster, journal each as it finishes, then write results.csv, results.json and pareto.png.

Points with equal keys (same model, resolved target and options) are evaluated once. Outputs are
written only when every point has a record, each through a temporary file (no partial outputs).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from pimc.errors import PimcError
from pimc.files import write_bytes_atomic
from pimc.sweep.evaluate import Job, evaluate
from pimc.sweep.journal import Journal
from pimc.sweep.plot import pareto_png
from pimc.sweep.results import build_rows, to_csv, to_json
from pimc.sweep.spec import SweepSpec, load_spec

JOURNAL = "journal.jsonl"
OUTPUTS = ("results.csv", "results.json", "pareto.png")

OnRecord = Callable[[dict[str, Any]], None]


@dataclass
class SweepResult:
    spec: SweepSpec
    rows: list[dict[str, Any]]
    evaluated: int
    """Points computed by this run (the rest came from the journal)."""
    reused: int
    wall_s: float
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        return counts


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def run_sweep(
    spec: SweepSpec | str | Path,
    out_dir: str | Path,
    *,
    workers: int | None = None,
    dask: str | None = None,
    fresh: bool = False,
    on_record: OnRecord | None = None,
) -> SweepResult:
    """Evaluate every point of `spec` not yet in `out_dir`'s journal; `on_record` sees each new record
    after it is journaled (an exception there stops the sweep, as a kill would)."""
    started = time.perf_counter()
    spec = spec if isinstance(spec, SweepSpec) else load_spec(spec)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PimcError(f"{out}: exists and is not a directory")
    if workers is not None and workers < 1:
        raise PimcError(f"--workers {workers}: expected 1 or more")
    if workers is not None and dask:
        raise PimcError("--workers sizes the local pool; a Dask cluster brings its own workers (give one of them)")
    journal_path = out / JOURNAL
    if fresh:
        journal_path.unlink(missing_ok=True)
    journal = Journal(journal_path)
    jobs = _pending_jobs(spec, journal)
    reused = len({p.key for p in spec.points}) - len(jobs)
    crashes: dict[str, dict[str, Any]] = {}

    def record(result: dict[str, Any]) -> None:
        if result["status"] == "crash":
            crashes[result["key"]] = result  # reported, not journaled: retried on the next run
        else:
            journal.append(result)
        if on_record is not None:
            on_record(result)

    if jobs:
        engine = _dask_results(jobs, dask) if dask else _local_results(jobs, workers or default_workers())
        for result in engine:
            record(result)
    rows = build_rows(spec, {**journal.records, **crashes})
    outputs = _write_outputs(spec, rows, out)
    return SweepResult(spec, rows, len(jobs), reused, time.perf_counter() - started, outputs)


def _pending_jobs(spec: SweepSpec, journal: Journal) -> list[Job]:
    jobs: dict[str, Job] = {}
    for point in spec.points:
        if point.key in journal.records or point.key in jobs:
            continue
        options = point.options.model_dump(exclude={"model", "target"})
        jobs[point.key] = Job(point.key, point.model, point.target, options)
    return list(jobs.values())


def _local_results(jobs: list[Job], workers: int) -> Iterator[dict[str, Any]]:
    """In this process for one worker; else a process pool."""
    if workers == 1 or len(jobs) == 1:
        yield from map(evaluate, jobs)
        return
    pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=_pool_context(),
                               initializer=_exit_with, initargs=(os.getpid(),))
    try:
        futures = {pool.submit(evaluate, job): job for job in jobs}
        for future in as_completed(futures):
            yield _outcome(future, futures[future])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _exit_with(sweep_pid: int) -> None:
    """Pool worker initializer: end the worker once the sweep's process is gone (a killed parent
    leaves pool workers waiting on their queue forever)."""
    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(sweep_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # alive, owned by someone else (cannot happen for our parent)
                pass

    threading.Thread(target=watch, name="pimc-sweep-watch", daemon=True).start()


def _pool_context() -> BaseContext:
    """Fork workers from a server that imported pimc once (no threads of ours are forked, and each
    worker starts without the seconds an import takes); spawn where there is no forkserver."""
    if "forkserver" not in get_all_start_methods():
        return get_context("spawn")
    context = get_context("forkserver")
    context.set_forkserver_preload(["pimc.sweep.evaluate"])
    return context


def _dask_results(jobs: list[Job], address: str) -> Iterator[dict[str, Any]]:
    try:
        from distributed import Client, as_completed as dask_completed
    except ImportError:
        raise PimcError("--dask needs Dask: pip install 'pimc[cluster]'") from None
    try:
        client = Client(address, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise PimcError(f"--dask {address}: cannot reach the Dask scheduler ({e})") from None
    try:
        futures = {client.submit(evaluate, job, key=f"pimc-sweep-{job.key}", pure=False): job for job in jobs}
        try:
            for future in dask_completed(list(futures), loop=client.loop):
                yield _outcome(future, futures[future])
        finally:
            client.cancel(list(futures))
    finally:
        client.close()


def _outcome(future: Future, job: Job) -> dict[str, Any]:
    """A worker's record, or a crash record when the worker itself died or could not run the job."""
    try:
        return future.result()
    except Exception as e:
        return {"key": job.key, "status": "crash", "error": f"worker failed: {type(e).__name__}: {e}", "wall_s": None}


def _write_outputs(spec: SweepSpec, rows: list[dict[str, Any]], out: Path) -> dict[str, Path]:
    contents = {
        "results.csv": to_csv(spec, rows).encode(),
        "results.json": to_json(spec, rows).encode(),
        "pareto.png": pareto_png(spec.name, rows, spec.axes),
    }
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in contents.items():
        paths[name] = out / name
        write_bytes_atomic(paths[name], data)
    return paths
