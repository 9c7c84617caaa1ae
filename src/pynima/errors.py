"""The one exception type the CLI turns into a one-line message instead of a traceback."""


class PynimaError(Exception):
    """A user-facing problem (bad file, bad argument); its message names the file and the problem."""


class NonFiniteError(PynimaError):
    """A NaN or infinite number where a loss, a prediction or a metric must be finite (a diverged model). Never
    counted as a score: NaN would compare as a perfect EMD of 0, or be written as bare NaN into JSON."""
