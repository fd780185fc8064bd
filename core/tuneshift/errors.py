"""The two kinds of failure the CLI reports, each as one line and an exit code."""


class TuneshiftError(Exception):
    """Base class: `str(err)` is the one line the user sees."""

    exit_code = 1


class UsageError(TuneshiftError):
    """Bad command line, config or input: nothing ran (exit code 2)."""

    exit_code = 2


class RunError(TuneshiftError):
    """Something failed while running; work done so far stays on disk (exit code 1)."""

    exit_code = 1
