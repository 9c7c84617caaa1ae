"""The one exception type the CLI turns into a one-line message instead of a traceback."""


class PynimaError(Exception):
    """A user-facing problem (bad file, bad argument); its message names the file and the problem."""
