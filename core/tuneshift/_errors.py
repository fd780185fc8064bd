"""The two kinds of failure the CLI reports, each as one line and an exit code."""


# every character str.splitlines() breaks at, shown escaped, so a value from the user cannot split the line
_ONE_LINE = {ord(c): repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


class TuneshiftError(Exception):
    """Base class: `str(err)` is the one line the user sees."""

    exit_code = 1

    def __str__(self) -> str:
        return super().__str__().translate(_ONE_LINE)


class UsageError(TuneshiftError):
    """Bad command line, config or input: nothing ran (exit code 2)."""

    exit_code = 2


class RunError(TuneshiftError):
    """Something failed while running; work done so far stays on disk (exit code 1)."""

    exit_code = 1


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM ended the command: 128 + the signal's number, and the rerun resumes."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


def interrupted_exit(exc: BaseException) -> int:
    """The exit code of an interruption: 143 for SIGTERM, 130 for SIGINT (a plain KeyboardInterrupt)."""
    return exc.exit_code if isinstance(exc, Interrupted) else 130
