"""Reading targets: preset names or .toml paths, `--set` overrides, one-line errors, and back to TOML.

Overrides are applied to the raw TOML dict before validation, so an overridden target is checked
exactly like a file that was edited by hand.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import tomli_w
from pydantic import BaseModel, ValidationError

from pimc.errors import TargetError
from pimc.targets.kinds import DEVICE_KINDS
from pimc.targets.schema import Link, Memory, Target

PRESETS_DIR = Path(__file__).parent / "presets"
_MAX_ERRORS = 3


def list_presets() -> list[str]:
    """Names of the shipped target presets, sorted."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def load_target(spec: str | Path, overrides: Sequence[str] = ()) -> Target:
    """Load a preset by name or a .toml file by path, apply `DEVICE.FIELD=VALUE` overrides, validate."""
    path, shown = _resolve(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TargetError(f"{shown}: cannot read target file ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise TargetError(f"{shown}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise TargetError(f"{shown}: invalid TOML: {e}") from None
    for override in overrides:
        _apply_override(raw, override, shown)
    try:
        return Target.model_validate(raw)
    except ValidationError as e:
        where = shown + (f" (with --set {', '.join(overrides)})" if overrides else "")
        raise TargetError(f"{where}: {format_validation_error(e, raw)}") from None


def target_to_toml(target: Target) -> str:
    """The resolved target as TOML that `load_target` reads back to an equal Target."""
    return tomli_w.dumps(target.model_dump(mode="json", exclude_none=True))


def _resolve(spec: str | Path) -> tuple[Path, str]:
    """The file to read and how to name it in messages (preset: file name; path: as given)."""
    text = str(spec)
    looks_like_path = isinstance(spec, Path) or text.endswith(".toml") or "/" in text or "\\" in text
    if not looks_like_path:
        path = PRESETS_DIR / f"{text}.toml"
        if not path.is_file():
            raise TargetError(f"unknown target {text!r} (presets: {', '.join(list_presets())})")
        return path, path.name
    path = Path(spec)
    if not path.is_file():
        raise TargetError(f"{text}: target file not found")
    return path, text


def _apply_override(raw: dict[str, Any], override: str, shown: str) -> None:
    """Set one `NAME.FIELD[.KEY]=VALUE` in the raw dict; NAME is a device, memory or link."""
    key, eq, value_text = override.partition("=")
    parts = key.strip().split(".")
    if not eq or len(parts) < 2 or not all(parts):
        raise TargetError(f"--set {override!r}: expected DEVICE.FIELD=VALUE, e.g. cpu.cores=8")
    value = _parse_value(value_text.strip())
    item, schema, what = _find_entity(raw, parts[0])
    if item is None:
        names = [e.get("name") for g in ("devices", "memories", "links")
                 for e in raw.get(g, []) if isinstance(e, dict)]
        raise TargetError(f"--set {override!r}: {shown} has no device, memory or link named "
                          f"{parts[0]!r} (names: {', '.join(map(str, names))})")
    node, cls = item, schema
    for depth, part in enumerate(parts[1:], start=1):
        if cls is not None and part not in cls.model_fields:
            owner = ".".join(parts[:depth])
            raise TargetError(f"--set {override!r}: {what} {owner!r} has no field {part!r} "
                              f"(fields: {', '.join(cls.model_fields)})")
        if depth == len(parts) - 1:
            node[part] = value
            return
        ann = cls.model_fields[part].annotation if cls is not None else None
        cls = _model_class(ann)
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise TargetError(f"--set {override!r}: {'.'.join(parts[:depth + 1])} is not a table")


def _model_class(ann: Any) -> type[BaseModel] | None:
    """The table model a field holds: `Model` or `Model | None`; None for scalars."""
    for candidate in (ann, *get_args(ann)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _find_entity(raw: dict[str, Any], name: str) -> tuple[dict | None, type[BaseModel] | None, str]:
    for group, what in (("devices", "device"), ("memories", "memory"), ("links", "link")):
        entries = raw.get(group, [])
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("name") == name:
                if group == "devices":
                    kind = DEVICE_KINDS.get(entry.get("kind"))  # type: ignore[arg-type]
                    return entry, kind.schema if kind else None, what
                return entry, Memory if group == "memories" else Link, what
    return None, None, ""


def _parse_value(text: str) -> Any:
    """A TOML value (8, 25.6, true, "x", [1, 2]); anything else is taken as a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def format_validation_error(error: ValidationError, raw: Any) -> str:
    """Pydantic errors as one line: `devices['cpu'].cores: Input should be ... (got -1)`; ..."""
    errors = error.errors()
    parts = [_format_one(e, raw) for e in errors[:_MAX_ERRORS]]
    more = len(errors) - _MAX_ERRORS
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def _format_one(err: Any, raw: Any) -> str:
    path = _loc_to_path(err["loc"], raw)
    kind, msg, got = err["type"], err["msg"], err.get("input")
    known = ", ".join(sorted(DEVICE_KINDS))
    if kind == "union_tag_invalid":
        msg = f"unknown device kind {err['ctx']['tag']!r} (known: {known})"
    elif kind == "union_tag_not_found":
        msg = f"missing field 'kind' (one of: {known})"
    elif kind == "extra_forbidden":
        msg = "unknown field"
    elif kind == "missing":
        msg = "missing required field"
    else:
        msg = msg.removeprefix("Value error, ")
        if not isinstance(got, dict | list) and kind != "value_error":
            shown = repr(got)
            msg += f" (got {shown if len(shown) <= 40 else shown[:37] + '...'})"
    return f"{path}: {msg}" if path else msg


def _loc_to_path(loc: tuple, raw: Any) -> str:
    """`('devices', 0, 'cpu', 'cores')` -> `devices['cpu'].cores` (item name when known, no tag)."""
    out, node = "", raw
    skip_tag = False
    for part in loc:
        if skip_tag:  # the discriminated-union tag pydantic inserts after a device index
            skip_tag = False
            if isinstance(node, dict) and part == node.get("kind"):
                continue
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            name = item.get("name") if isinstance(item, dict) else None
            out += f"[{name!r}]" if isinstance(name, str) and name else f"[{part}]"
            skip_tag = out.startswith("devices")
            node = item
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out
