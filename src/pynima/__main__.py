"""``python -m pynima``: the ``pynima`` command."""

import sys

from pynima.cli import main

if __name__ == "__main__":
    sys.exit(main())
