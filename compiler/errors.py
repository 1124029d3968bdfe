"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""


class PimcError(Exception):
    """Bad input or an infeasible request: the message names what and where."""


class ModelError(PimcError):
    """A model file, config or preset that cannot be read or is not supported."""


class TargetError(PimcError):
    """A target file or preset that is missing or fails schema validation."""


class ScheduleError(PimcError):
    """A schedule that breaks a dependency, a device's exclusivity or a memory capacity."""


class BundleError(PimcError):
    """A program bundle that is missing, incomplete or inconsistent."""


class SweepError(PimcError):
    """A sweep spec that cannot be read, fails validation, or names a bad model or target."""
