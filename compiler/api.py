"""pimc's Python API: `compile`, `estimate`, `load`, and the `Program` they return.

    import pimc
    prog = pimc.compile("tiny-llama", target="cpu-a76", seq_len=8, context=32)
    result = prog.run([1, 2, 3, 4, 5, 6, 7, 8], tokens=16)
    prog.save("out/tiny-llama"); pimc.load("out/tiny-llama").run(...)
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from pimc import __version__
from pimc.errors import PimcError
from pimc.execute import Executor
from pimc.frontends import ModelSource, read_model
from pimc.frontends.kernels import KERNEL_FUNCTION
from pimc.gc_tuning import fewer_collections
from pimc.mapping import MapOptions, Objective
from pimc.placement import placement_table
from pimc.pipeline import graph_passes, map_and_lower, report_sections, target_passes, weight_passes
from pimc.report import PhaseStats, build_kernel_report, build_report, device_usage, to_json, to_markdown
from pimc.targets import Target, load_target
from pimc.mapping.schedule import Schedule
from pimc.timeline import Event, TimelineRecorder, phase_events
from pimc.trace import build_trace
from pimc.transfers import (TransferEvent, link_usage, offchip_transfer_bytes, offchip_transfer_bytes_by_device,
                            transfer_events)


@dataclass(frozen=True)
class Report:
    """A `pimc.report/1` report; `data` holds every key, the properties the common ones."""

    data: dict[str, Any]

    @property
    def prefill(self) -> PhaseStats:
        return PhaseStats(*(self.data["prefill"][k] for k in ("latency_s", "energy_j", "offchip_bytes")))

    @property
    def decode(self) -> PhaseStats:
        return PhaseStats(*(self.data["decode"][k] for k in ("latency_s", "energy_j", "offchip_bytes")))

    @property
    def ttft_s(self) -> float:
        return self.data["ttft_s"]

    @property
    def tokens_per_s(self) -> float | None:
        return self.data["tokens_per_s"]

    @property
    def joules_per_token(self) -> float:
        return self.data["joules_per_token"]

    def to_json(self) -> str:
        return to_json(self.data)

    def to_markdown(self) -> str:
        return to_markdown(self.data)


@dataclass(frozen=True)
class RunResult:
    tokens: list[int]
    logits: np.ndarray
    """float32 [positions, vocab]: prompt positions, then one row per decode step."""
    report: Report
    events: tuple[Event, ...]
    """Every device op the run executed, in order (the trace's device tracks)."""
    transfers: tuple[TransferEvent, ...]
    """The link transfers of those calls (`pimc.transfers.transfer_events`), as the report priced them."""


@dataclass
class Program:
    """A compiled model: the lowered module, its weights and target, and how it was made."""

    module: ModuleOp
    weights: Mapping[str, np.ndarray]
    target: Target
    manifest: dict[str, Any]
    llm_ir: str = ""
    schedules: dict[str, Any] = field(default_factory=dict)
    compile_s: float | None = None
    """Wall time of the compile that made this program (None when loaded from a bundle)."""
    tokenizer: Any = None
    """The model's `tokenizers.Tokenizer` for text prompts, or None."""

    @property
    def seq_len(self) -> int:
        return self.manifest["options"]["seq_len"]

    @property
    def context(self) -> int:
        return self.manifest["options"]["context"]

    @cached_property
    def _parsed_schedules(self) -> dict[str, Schedule]:
        return {name: Schedule.from_json(data) for name, data in self.schedules.items()}

    def _schedules(self) -> dict[str, Schedule]:
        """Each phase's checked schedule, parsed once."""
        return self._parsed_schedules

    def _transfers(self, events: list[Event]) -> list[TransferEvent]:
        return transfer_events(events, self._schedules(), self.target)

    @cached_property
    def _one_call_each(self) -> tuple[list[Event], list[TransferEvent]]:
        """One call of each phase as scheduled, each from time 0, and its transfers (the static figures)."""
        phases = (KERNEL_FUNCTION,) if self.manifest.get("kernel") else ("prefill", "decode")
        events = [e for phase in phases for e in phase_events(self.module, phase)]
        return events, self._transfers(events)

    def _phase_stats(self, phase: str) -> PhaseStats:
        """One call of `phase` as scheduled: its ops and its transfers over links."""
        events, transfers = self._one_call_each
        return PhaseStats.of([e for e in events if e.phase == phase], [t for t in transfers if t.phase == phase])

    def _usage(self, events: list[Event], transfers: list[TransferEvent]) -> dict[str, Any]:
        """The `devices` and `links` sections of `events` and their `transfers`."""
        kinds = {d.name: d.kind for d in self.target.devices}
        return {"devices": device_usage(events, kinds, offchip_transfer_bytes_by_device(transfers, self.target)),
                "links": link_usage(transfers, self.target)}

    def _report(self, events: list[Event], transfers: list[TransferEvent], extra: dict | None = None) -> Report:
        return Report(
            build_report(
                model=self.manifest["model"],
                target=self.target.name,
                compile_s=self.compile_s,
                prompt_tokens=self.seq_len,
                context=self.context,
                prefill=self._phase_stats("prefill"),
                decode=self._phase_stats("decode"),
                **self._usage(events, transfers),
                schedule=self.manifest["schedule"],
                placement=self.manifest.get("placement"),
                extra={**report_sections(self.module), **(extra or {})},
            )
        )

    def report(self) -> Report:
        """Static figures: one prefill and one decode step, as scheduled (of a kernel model, its one
        call: `kernel_report`)."""
        if self.manifest.get("kernel"):
            return self.kernel_report()
        return self._report(*self._one_call_each)

    def kernel_report(self) -> Report:
        """Static figures of a kernel model (`gemv:MxK`, `gemm:MxKxN`): its one function, as scheduled."""
        return Report(build_kernel_report(
            model=self.manifest["model"], target=self.target.name, compile_s=self.compile_s,
            kernel=self._phase_stats(KERNEL_FUNCTION), **self._usage(*self._one_call_each),
            schedule=self.manifest["schedule"], placement=self.manifest.get("placement"),
        ))

    def run(self, prompt: Sequence[int], tokens: int = 16) -> RunResult:
        """Simulate: prefill `prompt`, then decode until `tokens` tokens are generated."""
        recorder = TimelineRecorder()
        executor = Executor(self.module, self.weights, recorder)
        generation = executor.generate(list(prompt), tokens)
        events = recorder.events
        transfers = self._transfers(events)
        ops_offchip = sum(e.offchip_bytes for e in events)
        run = {
            "prompt_tokens": len(prompt),
            "generated_tokens": len(generation.tokens),
            "latency_s": max([e.end_s for e in events] + [t.end_s for t in transfers], default=0.0),
            "energy_j": sum(e.energy_j for e in events) + sum(t.energy_j for t in transfers),
            "offchip_bytes": ops_offchip + offchip_transfer_bytes(transfers),
            "ops_offchip_bytes": ops_offchip,
        }
        simulator = executor.stats()  # e.g. the ADC error of crossbar devices
        extra = {"run": run, **({"simulator": simulator} if simulator else {})}
        return RunResult(generation.tokens, generation.logits, self._report(events, transfers, extra), tuple(events),
                         tuple(transfers))

    def trace(self, result: RunResult | None = None) -> dict[str, Any]:
        """A Chrome/Perfetto trace: of `result`'s run, or else of one prefill then one decode step."""
        events, transfers = self._timeline(result)
        return build_trace(events, self._schedules(), transfers, title=f"{self.manifest['model']} on {self.target.name}")

    def plots(self, directory: str | Path, result: RunResult | None = None) -> list[Path]:
        """PNG plots (Gantt, memory, energy, rooflines) of `result`'s run, or else of one prefill
        then one decode step, written into `directory`; the paths written."""
        from pimc.plots import PlotData, write_plots

        events, transfers = self._timeline(result)
        data = PlotData(
            title=f"{self.manifest['model']} on {self.target.name}",
            events=tuple(events),
            schedules=self._schedules(),
            target=self.target,
            transfers=tuple(transfers),
            placement=self.manifest.get("placement") or {},
            run=result is not None,
        )
        return write_plots(data, directory)

    def _timeline(self, result: RunResult | None) -> tuple[list[Event], list[TransferEvent]]:
        """The events and transfers of `result`'s run, or else of one prefill then one decode step:
        what the trace and the plots draw, both priced once (by `run` or `_static_timeline`)."""
        if result is None:
            return self._static_timeline
        return list(result.events), list(result.transfers)

    @cached_property
    def _static_timeline(self) -> tuple[list[Event], list[TransferEvent]]:
        """One prefill then one decode step on one time axis (or the kernel's one call), and its transfers."""
        if self.manifest.get("kernel"):
            events = phase_events(self.module, KERNEL_FUNCTION)
        else:
            prefill = phase_events(self.module, "prefill")
            end = max((e.end_s for e in prefill), default=0.0)
            events = prefill + phase_events(self.module, "decode", offset_s=end)
        return events, self._transfers(events)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (the model's tokenizer; an error when it has none)."""
        return self._require_tokenizer().encode(text).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self._require_tokenizer().decode(list(ids))

    def _require_tokenizer(self):
        if self.tokenizer is None:
            note = self.manifest.get("tokenizer_note")
            raise PimcError(f"model '{self.manifest['model']}' has no tokenizer{f' ({note})' if note else ''}; give token ids instead")
        return self.tokenizer

    def save(self, path: str | Path) -> Path:
        from pimc.bundle import save_bundle

        return save_bundle(self, Path(path))


def _default_context(seq_len: int) -> int:
    return max(2 * seq_len, 64)


def _prepare(model: str | ModelSource, target: str | Target, overrides: Sequence[str]) -> tuple[ModelSource, Target]:
    source = read_model(model) if isinstance(model, str) else model
    tgt = load_target(target, overrides) if not isinstance(target, Target) else target
    return source, tgt


@fewer_collections()
def compile(
    model: str | ModelSource,
    target: str | Target = "cpu-a76",
    *,
    seq_len: int = 8,
    context: int | None = None,
    wbits: float = 32,
    abits: float = 32,
    group: int = 32,
    overrides: Sequence[str] = (),
    weights: str = "auto",
    seed: int = 0,
    dataflow: str = "auto",
    fuse: bool = False,
    objective: str = "latency",
    time_limit: float = 1.0,
    solver: str = "cpsat",
) -> Program:
    """Compile `model` for `target`: prefill of `seq_len` tokens and decode with a KV cache of `context`.
    The mapper minimizes `objective` (latency | energy | offchip | mix[:latency=W,...]) with `solver`
    (cpsat | heft | topo-lru | single:DEVICE), `time_limit` per CP-SAT solve."""
    started = time.perf_counter()
    mapping = _map_options(objective, time_limit, solver)
    source, tgt = _prepare(model, target, overrides)
    if source.is_kernel:
        raise PimcError(f"{source.spec}: a kernel model has no tokens to run; use `pimc estimate` for its cost")
    context = context or _default_context(seq_len)
    lowered, store = _lower(source, tgt, seq_len, context, wbits, abits, group, dataflow, fuse, mapping, (weights, seed))
    tokenizer, tokenizer_note = _tokenizer(source)
    manifest = {
        "schema": "pimc.bundle/1",
        "pimc_version": __version__,
        "model": source.name,
        "target": tgt.name,
        "options": {
            "seq_len": seq_len,
            "context": context,
            "wbits": wbits,
            "abits": abits,
            "group": group,
            "overrides": list(overrides),
            "weights": "checkpoint" if weights == "checkpoint" or (weights == "auto" and source.has_checkpoint) else "random",
            "seed": seed,
            "dataflow": dataflow,
            "fuse": fuse,
            "objective": mapping.objective.name,
            "time_limit": time_limit,
            "solver": solver,
        },
        **_mapping_summary(lowered, tgt),
    }
    if tokenizer_note:
        manifest["tokenizer_note"] = tokenizer_note
    return Program(lowered.module, store, tgt, manifest, lowered.llm_ir, _schedules(lowered),
                   time.perf_counter() - started, tokenizer)


def _lower(source: ModelSource, tgt: Target, seq_len: int, context: int, wbits: float, abits: float, group: int,
           dataflow: str, fuse: bool, mapping: MapOptions, weights: tuple[str, int] | None = None):
    """The one compile pipeline: build → graph passes → target passes → (weights) → map and lower.

    `weights` = (kind, seed) loads and places weights (compile); None keeps it cost-only (estimate).
    Returns the lowered result and the weight store ({} when cost-only)."""
    module = source.build(seq_len, context)
    graph_passes(module, wbits, group, abits)
    target_passes(module, tgt, dataflow, fuse)
    store: dict = {}
    if weights is not None:
        store = source.load_weights(module, *weights)
        weight_passes(module, store, tgt)
    return map_and_lower(module, tgt, mapping), store


def _schedules(lowered) -> dict[str, Any]:
    return {f.name: f.schedule.to_json() for f in lowered.mapped}


def _mapping_summary(lowered, target: Target) -> dict[str, Any]:
    """The manifest keys both compile and estimate record: solver summary and per-op placement."""
    return {"schedule": _schedule_summary(lowered.mapped), "placement": placement_table(lowered.mapped, target)}


def _tokenizer(source: ModelSource):
    """The source's tokenizer and, when it has one that pimc cannot build, why (the compile goes on)."""
    try:
        return source.tokenizer, None
    except PimcError as e:
        return None, str(e)


@fewer_collections()
def estimate(
    model: str | ModelSource,
    target: str | Target = "cpu-a76",
    *,
    seq_len: int = 128,
    context: int | None = None,
    wbits: float = 32,
    abits: float = 32,
    group: int = 32,
    overrides: Sequence[str] = (),
    dataflow: str = "auto",
    fuse: bool = False,
    objective: str = "latency",
    time_limit: float = 1.0,
    solver: str = "cpsat",
) -> Report:
    """Cost only (no weights): schedule one prefill and one decode step and report them."""
    program = estimate_program(model, target, seq_len=seq_len, context=context, wbits=wbits, abits=abits, group=group,
                               overrides=overrides, dataflow=dataflow, fuse=fuse, objective=objective,
                               time_limit=time_limit, solver=solver)
    return program.report()


@fewer_collections()
def estimate_program(
    model: str | ModelSource,
    target: str | Target = "cpu-a76",
    *,
    seq_len: int = 128,
    context: int | None = None,
    wbits: float = 32,
    abits: float = 32,
    group: int = 32,
    overrides: Sequence[str] = (),
    dataflow: str = "auto",
    fuse: bool = False,
    objective: str = "latency",
    time_limit: float = 1.0,
    solver: str = "cpsat",
) -> Program:
    """What `estimate` reports from: the scheduled, lowered program without weights (for plots)."""
    started = time.perf_counter()
    mapping = _map_options(objective, time_limit, solver)
    source, tgt = _prepare(model, target, overrides)
    context = context or _default_context(seq_len)
    lowered, _ = _lower(source, tgt, seq_len, context, wbits, abits, group, dataflow, fuse, mapping)
    manifest = {
        "model": source.name,
        "options": {"seq_len": seq_len, "context": context},
        **_mapping_summary(lowered, tgt),
        "kernel": source.is_kernel,
    }
    program = Program(lowered.module, {}, tgt, manifest, lowered.llm_ir, _schedules(lowered))
    program.compile_s = time.perf_counter() - started
    return program


def load(path: str | Path) -> Program:
    from pimc.bundle import load_bundle

    return load_bundle(Path(path))


def _map_options(objective: str, time_limit: float, solver: str) -> MapOptions:
    from pimc.mapping import SOLVERS

    if not time_limit > 0:
        raise PimcError(f"time limit {time_limit}: expected a number of seconds > 0")
    if solver not in SOLVERS and not solver.startswith("single:"):
        raise PimcError(f"solver '{solver}': expected {', '.join(SOLVERS)} or single:DEVICE")
    return MapOptions(solver=solver, objective=Objective.parse(objective), time_limit_s=time_limit)


def _schedule_summary(mapped) -> dict[str, Any]:
    phases = {
        f.name: {"solver": f.schedule.solver, "status": f.schedule.status, "objective": f.schedule.objective,
                 "bound": f.schedule.bound, "gap": f.schedule.gap, "objective_kind": f.schedule.objective_kind,
                 "note": f.schedule.note}
        for f in mapped
    }
    statuses = [p["status"] for p in phases.values()]
    bounds = [p["bound"] for p in phases.values()]
    return {
        "solver": ",".join(dict.fromkeys(p["solver"] for p in phases.values())),
        "status": next((s for s in statuses if s != "OPTIMAL"), statuses[0]),
        "objective": sum(p["objective"] for p in phases.values()),
        "bound": None if None in bounds else sum(bounds),
        "gap": None if None in bounds else max(p["gap"] for p in phases.values()),
        "phases": phases,
    }
