"""The one exception type a user sees."""


class FacelabError(Exception):
    """A problem with the user's input or environment.

    The CLI prints ``str(err)`` as a single line on stderr and exits with status 2,
    so the message must name the file (or option) and the fix.
    """


class RunStopped(FacelabError):
    """A command stopped by a signal; ``exit_code`` is 128 + the signal (143 for SIGTERM, 130 for SIGINT)."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum
