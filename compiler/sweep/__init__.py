"""`pimc sweep`: estimate a grid or list of points over models, quantization and target fields,
in parallel (local processes or a Dask cluster), resumably, with CSV/JSON results and a Pareto plot."""

from pimc.sweep.results import pareto_front
from pimc.sweep.runner import SweepResult, default_workers, run_sweep
from pimc.sweep.spec import Point, SweepSpec, load_spec

__all__ = ["Point", "SweepResult", "SweepSpec", "default_workers", "load_spec", "pareto_front", "run_sweep"]
