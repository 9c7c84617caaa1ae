"""pynima: blind (no-reference) image quality assessment with NIMA, and TID2013-format data tooling."""

__version__ = "0.1.0"
