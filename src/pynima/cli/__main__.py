"""``python -m pynima.cli``: the ``pynima`` command, as ``python -m pynima``."""

import sys

from pynima.cli.process import main

if __name__ == "__main__":
    sys.exit(main())
