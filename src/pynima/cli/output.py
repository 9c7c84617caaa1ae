"""How ``pynima predict`` writes results: the table (with its header), CSV, JSON and JSON Lines, and the progress
bar on stderr.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from pynima.scale import BINS

if TYPE_CHECKING:
    from pynima.scoring.results import Result

__all__ = ["TABLE_HEADER", "WRITERS", "progress_bar", "result_writer"]

TABLE_HEADER = f"{'mean':>6}  {'std':>5}  path   (scores 0-9, higher is better)"


def _json_writer():
    """The rows as one JSON array, each written as it comes ("[" ... "]"; an empty list when there are none)."""
    import json

    state = {"rows": 0}

    def write(row: Result | None) -> None:
        first = state["rows"] == 0
        if row is None:
            print("[]" if first else "\n]")
            sys.stdout.flush()
            return
        state["rows"] += 1
        print(("[\n" if first else ",\n") + json.dumps(row.as_dict()), end="")

    return write


def _jsonl_writer():
    """One JSON object per line, flushed at once."""
    import json

    def write(row: Result | None) -> None:
        if row is not None:
            print(json.dumps(row.as_dict()))
        sys.stdout.flush()

    return write


def _csv_writer():
    """A CSV header, then one row per image (empty numbers for one that failed)."""
    import csv

    from pynima.images import display_name as shown
    from pynima.scoring.results import FIELDS

    writer = csv.writer(sys.stdout)  # the distribution as one column per score, p0 ... p9
    writer.writerow(
        ["path"] + [c for f in FIELDS for c in ([f"p{k}" for k in range(BINS)] if f == "distribution" else [f])]
    )

    def write(row: Result | None) -> None:
        if row is None:
            sys.stdout.flush()
            return
        values = (
            [f"{row.mean:.4f}", f"{row.std:.4f}"] + [f"{v:.5f}" for v in row.distribution]
            if row.distribution is not None
            else [""] * (2 + BINS)
        )
        writer.writerow([shown(row.path)] + values + [shown(row.warning or ""), shown(row.error or "")])

    return write


def _table_writer():
    """The table: its header before the first row, one line per image with its warning or error."""
    from pynima.images import display_name as shown

    state = {"rows": 0}

    def write(row: Result | None) -> None:
        if row is None:
            sys.stdout.flush()
            return
        if state["rows"] == 0:
            print(TABLE_HEADER)
        state["rows"] += 1
        if row.distribution is not None:
            note = f"  (warning: {shown(row.warning)})" if row.warning else ""
            print(f"{row.mean:6.3f}  {row.std:5.3f}  {shown(row.path)}{note}")
        else:
            print(f"{'-':>6}  {'-':>5}  {shown(row.path)}  (error: {shown(row.error)})")

    return write


WRITERS = {"table": _table_writer, "json": _json_writer, "jsonl": _jsonl_writer, "csv": _csv_writer}


def result_writer(fmt: str):
    """A function that writes one result row (``None``: the end) to stdout as it comes: a table line, a CSV row, a
    JSON Lines object, or an element of one JSON array (streamed, so nothing waits for the last image).

    Args:
        fmt: one of ``WRITERS`` (predict's ``--format``).

    Returns:
        ``write(row)``, to call once per image and once with None at the end.
    """
    return WRITERS[fmt]()


def progress_bar(quiet: bool):
    """A progress bar on stderr (tqdm) that shows itself only after a second, on a terminal, without --quiet; its
    ``write`` prints a line above it (or plainly when there is no bar).
    """
    from tqdm import tqdm

    return tqdm(unit=" images", file=sys.stderr, delay=1.0, disable=quiet or not sys.stderr.isatty(), leave=False)
