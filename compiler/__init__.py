"""pimc: compile LLMs to timed programs for heterogeneous processing-in-memory edge hardware."""

__version__ = "0.1.0"

from pimc.api import Program, Report, RunResult, compile, estimate, load  # noqa: E402

__all__ = ["Program", "Report", "RunResult", "__version__", "compile", "estimate", "load"]
