"""The one exception type the CLI turns into a one-line message instead of a traceback."""

__all__ = ["NonFiniteError", "PynimaError", "Terminated"]


class PynimaError(Exception):
    """A user-facing problem (bad file, bad argument); its message names the file and the problem."""


class NonFiniteError(PynimaError):
    """A NaN or infinite number where a loss, a prediction or a metric must be finite (a diverged model). Never
    counted as a score: NaN would compare as a perfect EMD of 0, or be written as bare NaN into JSON.
    """


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by the CLI's handler: a KeyboardInterrupt, so that every cleanup written for
    Ctrl-C (finally blocks, worker pools) runs for it too; the CLI exits 143 for it and 130 for Ctrl-C.
    """


class DatasetError(PynimaError):
    """A dataset on disk is malformed; the message names the file, the line and how many problems there are."""
