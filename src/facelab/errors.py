"""The one exception type a user sees."""


class FacelabError(Exception):
    """A problem with the user's input or environment.

    The CLI prints ``str(err)`` as a single line on stderr and exits with status 2,
    so the message must name the file (or option) and the fix.
    """
