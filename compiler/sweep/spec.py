"""Sweep specs: a TOML file naming shared settings, then a grid or a list of points over them.

    name = "meadow-bandwidth"
    [base]                        # settings every point shares
    model = "opt-125m"
    target = "zcu102-meadow"      # preset name or .toml path (relative to the spec file)
    wbits = 8
    [grid]                        # cartesian product, first key varies slowest
    "fpga.offchip_gbps" = [1.5, 12, 51]
    seq_len = [32, 128]

A setting is one of `Point`'s option fields or `DEVICE.FIELD` (a target override, as `--set`).
Every point is validated, and its target resolved, before anything runs: a bad spec is one error
naming the file and the field.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pimc import __version__
from pimc.errors import PimcError, SweepError
from pimc.frontends import read_model
from pimc.mapping import SOLVERS
from pimc.mapping.objective import Objective
from pimc.passes.quantize import activation_quant, quant_for_bits
from pimc.targets import Target, load_target
from pimc.targets.load import format_validation_error


class Options(BaseModel):
    """What `pimc estimate` takes for one point, besides the target overrides."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="preset name, config.json (folder), .gguf file or kernel")
    target: str = Field(min_length=1, description="target preset name or .toml path")
    seq_len: int = Field(128, gt=0, description="prompt length compiled for prefill")
    context: int | None = Field(None, gt=0, description="KV-cache capacity (default max(2*seq_len, 64))")
    wbits: float = Field(32, description="weight bits: 1, 1.58, 2..8, 16 or 32")
    abits: float = Field(32, description="activation bits: 2..8 or 32")
    group: int = Field(32, gt=0, description="quantization group size")
    dataflow: Literal["auto", "gemm", "tphs"] = "auto"
    fuse: bool = False
    objective: str = Field("latency", description="mapper objective: latency | energy | offchip | mix[:...]")
    time_limit: float = Field(1.0, gt=0, description="CP-SAT limit per solve, deterministic seconds")
    solver: str = Field("cpsat", description="mapper: cpsat | heft | topo-lru | single:DEVICE")

    @field_validator("objective")
    @classmethod
    def _known_objective(cls, text: str) -> str:
        _reraise_as_value_error(Objective.parse, text)
        return text

    @field_validator("solver")
    @classmethod
    def _known_solver(cls, solver: str) -> str:
        if solver not in SOLVERS and not solver.startswith("single:"):
            raise ValueError(f"solver '{solver}': expected {', '.join(SOLVERS)} or single:DEVICE")
        return solver

    @field_validator("wbits")
    @classmethod
    def _known_wbits(cls, bits: float) -> float:
        _reraise_as_value_error(quant_for_bits, bits, 32)
        return bits

    @field_validator("abits")
    @classmethod
    def _known_abits(cls, bits: float) -> float:
        _reraise_as_value_error(activation_quant, bits)
        return bits


OPTION_NAMES = tuple(Options.model_fields)


def _reraise_as_value_error(check, *args) -> None:
    try:
        check(*args)
    except PimcError as e:
        raise ValueError(str(e)) from None


class SpecFile(BaseModel):
    """The file's shape; the settings inside are checked per point (see `load_spec`)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    description: str = ""
    base: dict[str, Any] = {}
    grid: dict[str, Any] | None = None
    points: list[dict[str, Any]] | None = Field(None, min_length=1)


@dataclass(frozen=True)
class Point:
    """One resolved point of a sweep: what to estimate, and the key its result is stored under."""

    index: int
    options: Options
    overrides: tuple[tuple[str, Any], ...]
    """`DEVICE.FIELD` -> value, in spec order."""
    target: Target
    """The target with the overrides applied (shipped to workers, so they need no target files)."""
    model: str
    """The model spec to load: a path resolved against the spec's folder, else as written."""
    key: str
    """sha256 of the canonical parameters and the pimc version: equal keys give equal results."""

    @property
    def params(self) -> dict[str, Any]:
        """The point's parameters as written in the spec (options first, then overrides)."""
        return {**self.options.model_dump(), **dict(self.overrides)}


@dataclass(frozen=True)
class SweepSpec:
    name: str
    description: str
    path: Path
    points: tuple[Point, ...]
    axes: tuple[str, ...]
    """The settings that vary between points (grid keys, or keys the points set), in spec order."""

    @property
    def override_names(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for point in self.points:
            seen.update(dict.fromkeys(name for name, _ in point.overrides))
        return tuple(seen)


def load_spec(path: str | Path) -> SweepSpec:
    """Read, validate and expand a sweep spec; every point's target is loaded once here."""
    path = Path(path)
    shown = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SweepError(f"{shown}: cannot read sweep spec ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise SweepError(f"{shown}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"{shown}: invalid TOML: {e}") from None
    try:
        spec = SpecFile.model_validate(raw)
    except ValidationError as e:
        raise SweepError(f"{shown}: {format_validation_error(e, raw)}") from None
    if spec.grid is not None and spec.points is not None:
        raise SweepError(f"{shown}: give either [grid] or [[points]], not both")

    base = _flatten(spec.base, "base", shown)
    settings, axes = _expand(spec, base, shown)
    points = _resolve(settings, path, shown)
    return SweepSpec(spec.name or path.stem, spec.description, path, points, axes)


def _flatten(table: dict[str, Any], where: str, shown: str, prefix: str = "") -> dict[str, Any]:
    """`{fpga = {offchip_gbps = 12}}` -> `{"fpga.offchip_gbps": 12}`; unknown plain keys are errors."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name not in OPTION_NAMES:
            flat.update(_flatten(value, where, shown, f"{name}."))
        elif "." in name or name in OPTION_NAMES:
            flat[name] = value
        else:
            raise SweepError(f"{shown}: {where}.{name}: unknown setting (expected one of "
                             f"{', '.join(OPTION_NAMES)}, or DEVICE.FIELD for a target field)")
    return flat


def _expand(spec: SpecFile, base: dict[str, Any], shown: str) -> tuple[list[tuple[str, dict]], tuple[str, ...]]:
    """Each point's settings with where each came from (for error messages), and the varying keys."""
    if spec.points is not None:
        rows = [_flatten(p, f"points[{i}]", shown) for i, p in enumerate(spec.points)]
        axes = tuple(dict.fromkeys(k for row in rows for k in row))
        return [(f"points[{i}]", {**base, **row}) for i, row in enumerate(rows)], axes
    grid = _flatten(spec.grid or {}, "grid", shown)
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"{shown}: grid.{key}: expected a non-empty list of values (got {values!r})")
    axes = tuple(grid)
    points = []
    for index, combo in enumerate(itertools.product(*grid.values())):
        where = f"grid point {index} (" + ", ".join(f"{a}={_toml_value(v)}" for a, v in zip(axes, combo)) + ")"
        points.append((where if axes else "base", {**base, **dict(zip(axes, combo))}))
    return points, axes


def _resolve(settings: list[tuple[str, dict]], path: Path, shown: str) -> tuple[Point, ...]:
    targets: dict[tuple, Target] = {}
    models: set[str] = set()
    points = []
    for index, (where, values) in enumerate(settings):
        options_raw = {k: v for k, v in values.items() if k in OPTION_NAMES}
        overrides = tuple((k, v) for k, v in values.items() if k not in OPTION_NAMES)
        try:
            options = Options.model_validate(options_raw)
        except ValidationError as e:
            message = format_validation_error(e, options_raw)
            if any(err["type"] == "missing" for err in e.errors()):
                message += " (set it in [base], [grid] or every [[points]])"
            raise SweepError(f"{shown}: {where}: {message}") from None
        target_path = _near_spec(options.target, path)
        sets = tuple(f"{name}={_toml_value(value)}" for name, value in overrides)
        if (target_path, sets) not in targets:
            try:
                targets[target_path, sets] = load_target(target_path, sets)
            except PimcError as e:
                raise SweepError(f"{shown}: {where}: {e}") from None
        model = _near_spec(options.model, path)
        if model not in models:
            try:
                read_model(model)
            except PimcError as e:
                raise SweepError(f"{shown}: {where}: model: {e}") from None
            models.add(model)
        target = targets[target_path, sets]
        points.append(Point(index, options, overrides, target, model, _key(model, target, options)))
    return tuple(points)


def _file_digest(model: str) -> str | None:
    """sha256 of a model file (or of the config.json in a model folder), so an edited model is
    evaluated again; None for presets and kernels."""
    path = Path(model)
    path = path / "config.json" if path.is_dir() else path
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _near_spec(spec: str, path: Path) -> str:
    """A relative file path is taken relative to the spec's folder; anything else stays as written."""
    candidate = path.parent / spec
    return str(candidate) if not Path(spec).is_absolute() and candidate.exists() else spec


def _toml_value(value: Any) -> str:
    """A value as TOML text for a `--set` override (`12.5`, `"analog"`, `[1, 2]`)."""
    return tomli_w.dumps({"v": value}).removeprefix("v = ").strip()


def _key(model: str, target: Target, options: Options) -> str:
    """Hash of what determines the result: model (spec and file content), resolved target, options,
    pimc version."""
    canonical = {
        "pimc": __version__,
        "model": model,
        "model_file": _file_digest(model),
        "target": target.model_dump(mode="json"),
        "options": options.model_dump(exclude={"model", "target"}),
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()[:16]
