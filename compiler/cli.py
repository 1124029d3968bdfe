"""The `pimc` command line (contract in DESIGN.md). Errors a user can fix exit 2 with one line."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

import pimc
from pimc.errors import PimcError
from pimc.files import write_atomic

app = typer.Typer(add_completion=False, no_args_is_help=True, help="pimc: compile LLMs for heterogeneous PIM edge hardware.")
targets_app = typer.Typer(no_args_is_help=True, help="List and show target descriptions.")
app.add_typer(targets_app, name="targets")

_state = {"debug": False}

TargetOpt = Annotated[str, typer.Option("--target", "-t", help="Target preset name or .toml path.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a target field: DEVICE.FIELD=VALUE (repeatable).")]
SeqOpt = Annotated[int, typer.Option("--seq-len", help="Prompt length compiled for prefill.")]
ContextOpt = Annotated[Optional[int], typer.Option("--context", help="KV-cache capacity for decode (default max(2*seq-len, 64)).")]
WbitsOpt = Annotated[float, typer.Option("--wbits", help="Weight bits: 1, 1.58, 2..8, 16 or 32.")]
AbitsOpt = Annotated[float, typer.Option("--abits", help="Activation bits of linear inputs: 2..8 (dynamic, per token) or 32.")]
GroupOpt = Annotated[int, typer.Option("--group", help="Quantization group size along the input dimension.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")]
FuseOpt = Annotated[bool, typer.Option("--fuse/--no-fuse", help="Fuse op chains into one kernel where that is cheaper (intermediates stay on chip).")]
DataflowOpt = Annotated[str, typer.Option("--dataflow", help="Attention dataflow where a device offers several: auto | gemm | tphs.")]
ObjectiveOpt = Annotated[str, typer.Option("--objective", help="Mapper objective: latency | energy | offchip | mix[:latency=W,energy=W,offchip=W].")]
TimeLimitOpt = Annotated[float, typer.Option("--time-limit", help="CP-SAT limit per solve (deterministic seconds; results are reproducible).")]
SolverOpt = Annotated[str, typer.Option("--solver", help="Mapper: cpsat | heft | topo-lru | single:DEVICE (baselines for comparison).")]
PlotsOpt = Annotated[Optional[Path], typer.Option("--plots", help="Write PNG plots (Gantt, memory, energy, rooflines) into DIR.")]
ReportOpt = Annotated[Optional[Path], typer.Option("--report", help="Write the report to F: Markdown if F ends .md, JSON if .json.")]


def _report_format(path: Path | None) -> str | None:
    """md or json from --report's suffix, checked before any work is done."""
    if path is None:
        return None
    suffix = path.suffix.lower()
    if suffix not in (".md", ".json"):
        raise PimcError(f"--report {path}: expected a file name ending .md (Markdown) or .json")
    return suffix[1:]


def _progress_unless(as_json: bool) -> None:
    """Progress bars go to stderr on a terminal, but never with --json (one JSON object and nothing else)."""
    from pimc import progress

    progress.configure(enabled=False if as_json else None)


def _save_report(path: Path | None, report: pimc.Report) -> None:
    if path is not None:
        text = report.to_json() if _report_format(path) == "json" else report.to_markdown()
        write_atomic(path, lambda f: f.write(text.encode()))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pimc {pimc.__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    _state["debug"] = debug


def _emit_report(report: pimc.Report, as_json: bool) -> None:
    typer.echo(report.to_json() if as_json else report.to_markdown(), nl=False)


@app.command()
def compile(
    model: Annotated[str, typer.Argument(help="Preset name (tiny-llama, llama2-7b, opt-125m ...), config.json folder or .gguf file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Bundle directory to write.")],
    target: TargetOpt = "cpu-a76",
    seq_len: SeqOpt = 8,
    context: ContextOpt = None,
    wbits: WbitsOpt = 32,
    abits: AbitsOpt = 32,
    group: GroupOpt = 32,
    overrides: SetOpt = None,
    weights: Annotated[str, typer.Option(help="auto (checkpoint if present, else random) | checkpoint | random")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of random weights.")] = 0,
    dataflow: DataflowOpt = "auto",
    fuse: FuseOpt = False,
    objective: ObjectiveOpt = "latency",
    time_limit: TimeLimitOpt = 1.0,
    solver: SolverOpt = "cpsat",
    report_file: ReportOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compile MODEL for a target into a program bundle."""
    _report_format(report_file)
    _progress_unless(as_json)
    if model.lower().endswith(".gguf") and wbits != 32:
        typer.echo(f"pimc: note: --wbits {wbits:g} re-quantizes the GGUF's dequantized weights (its own encodings are dropped)", err=True)
    program = pimc.compile(
        model, target, seq_len=seq_len, context=context, wbits=wbits, abits=abits, group=group,
        overrides=overrides or (), weights=weights, seed=seed, dataflow=dataflow, fuse=fuse,
        objective=objective, time_limit=time_limit, solver=solver,
    )
    path = program.save(output)
    _save_report(report_file, program.report())
    if as_json:
        typer.echo(json.dumps({"bundle": str(path), "report": program.report().data}, indent=2))
    else:
        typer.echo(f"wrote {path}")
        _emit_report(program.report(), False)


def _parse_ids(text: str) -> list[int]:
    try:
        ids = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise PimcError(f"--input-ids '{text}': expected comma-separated integers like 1,2,3") from None
    if not ids:
        raise PimcError("--input-ids is empty")
    return ids


def _save_npy(path: Path, array: np.ndarray) -> None:
    write_atomic(path, lambda f: np.save(f, array))


def _save_trace(path: Path, trace: dict) -> None:
    from pimc.trace import trace_json

    write_atomic(path, lambda f: f.write(trace_json(trace).encode()))


TraceOpt = Annotated[Optional[Path], typer.Option("--trace", help="Write a Chrome/Perfetto trace (JSON) to F.")]
@app.command()
def run(
    bundle: Annotated[Path, typer.Argument(help="A bundle written by `pimc compile`.")],
    input_ids: Annotated[Optional[str], typer.Option("--input-ids", help="Prompt token ids, e.g. 1,2,3.")] = None,
    prompt: Annotated[Optional[str], typer.Option("--prompt", help="Prompt text (needs a tokenizer).")] = None,
    tokens: Annotated[int, typer.Option("--tokens", "-n", help="Tokens to generate (prefill gives the first).")] = 16,
    save_logits: Annotated[Optional[Path], typer.Option("--save-logits", help="Write float32 logits [positions, vocab] to F.npy.")] = None,
    trace: TraceOpt = None,
    plots: PlotsOpt = None,
    report_file: ReportOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Simulate a bundle: prefill the prompt, then decode."""
    _report_format(report_file)
    _progress_unless(as_json)
    if (prompt is None) == (input_ids is None):
        raise PimcError("give the prompt as --prompt TEXT or --input-ids 1,2,3 (one of them)")
    program = pimc.load(bundle)
    ids = program.encode(prompt) if prompt is not None else _parse_ids(input_ids)
    result = program.run(ids, tokens)
    text = program.decode(result.tokens) if program.tokenizer is not None else None
    if save_logits is not None:
        _save_npy(save_logits, result.logits)
    if trace is not None:
        _save_trace(trace, program.trace(result))
    if plots is not None:
        program.plots(plots, result)
    _save_report(report_file, result.report)
    if as_json:
        out = {"tokens": result.tokens, **({"text": text} if text is not None else {}), "report": result.report.data}
        typer.echo(json.dumps(out, indent=2))
    else:
        typer.echo(f"tokens: {' '.join(map(str, result.tokens))}")
        if text is not None:
            typer.echo(f"text: {text}")
        _emit_report(result.report, False)


@app.command()
def estimate(
    model: Annotated[str, typer.Argument(help="Preset name or config.json folder (no weights needed).")],
    target: TargetOpt = "cpu-a76",
    seq_len: SeqOpt = 128,
    context: ContextOpt = None,
    wbits: WbitsOpt = 32,
    abits: AbitsOpt = 32,
    group: GroupOpt = 32,
    overrides: SetOpt = None,
    dataflow: DataflowOpt = "auto",
    fuse: FuseOpt = False,
    objective: ObjectiveOpt = "latency",
    time_limit: TimeLimitOpt = 1.0,
    solver: SolverOpt = "cpsat",
    plots: PlotsOpt = None,
    report_file: ReportOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cost of one prefill and one decode step of MODEL on a target."""
    _report_format(report_file)
    _progress_unless(as_json)
    program = pimc.api.estimate_program(
        model, target, seq_len=seq_len, context=context, wbits=wbits, abits=abits, group=group, overrides=overrides or (),
        dataflow=dataflow, fuse=fuse, objective=objective, time_limit=time_limit, solver=solver,
    )
    report = program.report()
    if plots is not None:
        program.plots(plots)
    _save_report(report_file, report)
    _emit_report(report, as_json)


@app.command()
def report(
    bundle: Annotated[Path, typer.Argument(help="A bundle written by `pimc compile`.")],
    format: Annotated[str, typer.Option("--format", help="md | json")] = "md",
    trace: TraceOpt = None,
    plots: PlotsOpt = None,
) -> None:
    """The static report of a bundle (one prefill, one decode step as scheduled)."""
    if format not in ("md", "json"):
        raise PimcError(f"--format '{format}': expected md or json")
    program = pimc.load(bundle)
    if trace is not None:
        _save_trace(trace, program.trace())
    if plots is not None:
        program.plots(plots)
    _emit_report(program.report(), format == "json")


@app.command()
def opt(
    file: Annotated[Path, typer.Argument(help="An .mlir file in pimc's dialects ('-' for stdin).")],
    passes: Annotated[str, typer.Option("--passes", "-p", help="Comma-separated pipeline, e.g. quantize{bits=4},map{target=cpu-a76}.")] = "",
    generic: Annotated[bool, typer.Option("--generic", help="Print the generic op form.")] = False,
) -> None:
    """Parse, verify, run passes, verify again, print (like mlir-opt)."""
    from pimc.ir import parse_module, print_module, run_passes

    if str(file) == "-":
        text, source = sys.stdin.read(), "<stdin>"
    else:
        if not file.is_file():
            raise PimcError(f"{file}: no such file")
        text, source = file.read_text(), str(file)
    module = parse_module(text, source)
    run_passes(module, passes)
    typer.echo(print_module(module, generic), nl=False)


@app.command()
def sweep(
    spec: Annotated[Path, typer.Argument(help="A sweep spec (.toml): base settings, then a grid or a list of points (see README).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Results directory (default out/NAME).")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-j", help="Local worker processes (default min(2, CPUs)).")] = None,
    dask: Annotated[Optional[str], typer.Option("--dask", help="Run the points on the Dask scheduler at ADDRESS instead.")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Forget finished points (the journal) and evaluate all again.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Estimate every point of a grid over models, quantization and target fields; resumable."""
    from pimc.sweep import load_spec, run_sweep
    from pimc.sweep.results import to_json, to_markdown

    loaded = load_spec(spec)
    out = output or Path("out") / loaded.name
    progress = _sweep_progress(loaded) if sys.stderr.isatty() and not as_json else None
    result = run_sweep(loaded, out, workers=workers, dask=dask, fresh=fresh, on_record=progress)
    if as_json:
        typer.echo(to_json(loaded, result.rows), nl=False)
    else:
        typer.echo(to_markdown(loaded, result.rows), nl=False)
        counts = ", ".join(f"{n} {status}" for status, n in sorted(result.counts.items()))
        typer.echo(f"{len(result.rows)} points ({counts}); evaluated {result.evaluated}, reused {result.reused} "
                   f"in {result.wall_s:.1f} s; wrote {', '.join(str(p) for p in result.outputs.values())}")
    if result.counts.get("crash"):  # pimc bugs: results are written, the exit code says so (1)
        raise RuntimeError(f"{result.counts['crash']} point(s) crashed (see the error column of {out / 'results.csv'})")


def _sweep_progress(spec):
    """A line on stderr per finished point (terminals only): its swept settings and figures."""
    points = {}
    for point in spec.points:
        points.setdefault(point.key, point)

    def show(record: dict) -> None:
        point = points[record["key"]]
        where = ", ".join(f"{a}={point.params[a]}" for a in spec.axes) or "base"
        metrics = record.get("metrics") or {}
        figures = (f"{metrics['tokens_per_s']:.4g} tokens/s, {metrics['joules_per_token']:.4g} J/token"
                   if metrics.get("tokens_per_s") is not None else record.get("error") or "")
        typer.echo(f"  [{point.index}] {where}: {record['status']} {figures} ({record.get('wall_s') or 0:.1f} s)", err=True)

    return show


@targets_app.command("list")
def targets_list() -> None:
    """Names of the bundled target presets."""
    from pimc.targets import list_presets, load_target

    for name in list_presets():
        typer.echo(f"{name}\t{load_target(name).description}")


@targets_app.command("show")
def targets_show(
    name: Annotated[str, typer.Argument(help="Preset name or .toml path.")],
    as_json: JsonOpt = False,
) -> None:
    """A target, resolved and validated (TOML, or JSON with --json)."""
    from pimc.targets import load_target, target_to_toml

    target = load_target(name)
    typer.echo(json.dumps(target.model_dump(mode="json"), indent=2) if as_json else target_to_toml(target))


def main() -> None:
    try:
        app(standalone_mode=False)
    except PimcError as e:
        _fail(e, 2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as e:
        if hasattr(e, "format_message") and hasattr(e, "exit_code"):  # a usage error of typer's click
            if e.format_message():  # empty when a group was called bare and printed its help
                typer.echo(f"pimc: error: {e.format_message()} (see --help)", err=True)
            sys.exit(e.exit_code)
        _fail(e, 1, internal=True)
    sys.exit(0)


def _fail(error: BaseException, code: int, internal: bool = False) -> None:
    if _state["debug"]:
        traceback.print_exception(error)
    message = " ".join(str(error).split("\n")[0].split()) or type(error).__name__
    prefix = "internal error" if internal else "error"
    typer.echo(f"pimc: {prefix}: {message}", err=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
