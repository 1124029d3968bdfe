"""Progress of long stages (model import, weight conversion, the mapper's solver, simulation of many
tokens), drawn with rich on stderr only when stderr is a terminal.

    from pimc import progress
    with progress.task("reading weights", total=len(names)) as bar:
        for name in names:
            ...
            bar.advance()
    with progress.solver("mapping decode") as live:        # from a CP-SAT solution callback
        live.update(objective=2.6e-4, bound=2.3e-4, unit="s")

Everything is a no-op when progress is off: stderr is not a terminal (CI logs, pipes, tests under
CliRunner), or the CLI turned it off (`--json`). Stages may nest: they share one live display, one
line each, and the lines vanish when their stage ends, so nothing is left in the terminal's output.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

__all__ = ["configure", "enabled", "solver", "task"]

_lock = threading.Lock()
_settings: dict = {"enabled": None, "console": None}
_live: dict = {"progress": None, "users": 0}


def configure(enabled: bool | None = None, console: Console | None = None) -> None:
    """enabled: True/False to force, None to follow whether the console is a terminal. console:
    where to draw (default: stderr). Tests pass a Console(force_terminal=True, file=...)."""
    _settings["enabled"], _settings["console"] = enabled, console


def _console() -> Console:
    return _settings["console"] or Console(stderr=True)


def enabled() -> bool:
    """Whether stages draw progress now."""
    if _settings["enabled"] is not None:
        return _settings["enabled"]
    return _console().is_terminal


class _Off:
    """What a stage gets when progress is off: every call does nothing."""

    def advance(self, steps: float = 1) -> None:
        pass

    def update(self, **_fields) -> None:
        pass


class Task:
    """One bar: `advance()` per unit of work done."""

    def __init__(self, progress: Progress, task: TaskID):
        self._progress, self._task = progress, task

    def advance(self, steps: float = 1) -> None:
        self._progress.advance(self._task, steps)

    def update(self, *, completed: float | None = None, description: str | None = None) -> None:
        self._progress.update(self._task, completed=completed, description=description)


class SolverStatus:
    """One status line of a solver: its best objective so far, its proven bound and the gap."""

    def __init__(self, progress: Progress, task: TaskID, description: str):
        self._progress, self._task, self._description = progress, task, description
        self.solutions = 0

    def update(self, *, objective: float | None = None, bound: float | None = None, unit: str = "") -> None:
        """Called by the solver on each new solution or bound (from its own thread)."""
        if objective is not None:
            self.solutions += 1
        parts = [f"{self.solutions} solutions"]
        if objective is not None:
            parts.append(f"objective {_value(objective, unit)}")
        if bound is not None:
            parts.append(f"bound {_value(bound, unit)}")
        if objective is not None and bound is not None and objective > 0:
            parts.append(f"gap {max(0.0, (objective - bound) / objective):.1%}")
        self._progress.update(self._task, description=f"{self._description}: {', '.join(parts)}")


def _value(value: float, unit: str) -> str:
    """4 significant digits; seconds with a prefix (ms, µs) so a makespan reads at a glance."""
    if unit == "s":
        for factor, prefix in ((1.0, ""), (1e-3, "m"), (1e-6, "µ")):
            if abs(value) >= factor:
                return f"{value / factor:.4g} {prefix}s"
        return f"{value * 1e9:.4g} ns"
    return f"{value:.4g}{f' {unit}' if unit else ''}"


@contextmanager
def _shared_progress() -> Iterator[Progress]:
    """The one live display every open stage draws into; started by the first, stopped by the last."""
    with _lock:
        if _live["progress"] is None:
            _live["progress"] = Progress(
                SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(bar_width=24),
                MofNCompleteColumn(), TimeElapsedColumn(), console=_console(), transient=True,
            )
            _live["progress"].start()
        _live["users"] += 1
        progress = _live["progress"]
    try:
        yield progress
    finally:
        with _lock:
            _live["users"] -= 1
            if _live["users"] == 0:
                progress.stop()
                _live["progress"] = None


@contextmanager
def task(description: str, total: float | None = None) -> Iterator[Task | _Off]:
    """A bar for a stage of `total` units (None: a spinner without a bar)."""
    if not enabled():
        yield _Off()
        return
    with _shared_progress() as progress:
        task_id = progress.add_task(description, total=total)
        try:
            yield Task(progress, task_id)
        finally:
            progress.refresh()  # the finished state is drawn once before its line goes
            progress.remove_task(task_id)


@contextmanager
def solver(description: str) -> Iterator[SolverStatus | _Off]:
    """A status line for a solve whose length is unknown: objective, bound and gap as they improve."""
    if not enabled():
        yield _Off()
        return
    with _shared_progress() as progress:
        task_id = progress.add_task(f"{description}: searching", total=None)
        try:
            yield SolverStatus(progress, task_id, description)
        finally:
            progress.refresh()
            progress.remove_task(task_id)
