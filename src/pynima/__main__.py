"""``python -m pynima``: the ``pynima`` command."""

import sys

from pynima.cli import main

sys.exit(main())
