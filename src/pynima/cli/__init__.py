"""The ``pynima`` command: ``main`` is its entry point (``pynima.cli.process``), the parser is ``pynima.cli.parser``."""

from pynima.cli.process import main

__all__ = ["main"]
