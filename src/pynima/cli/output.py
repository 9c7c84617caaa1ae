"""How ``pynima predict`` writes results: the table (with its header), CSV, JSON and JSON Lines, and the progress
bar on stderr."""

from __future__ import annotations

import sys

from pynima.scale import BINS

__all__ = ["TABLE_HEADER", "progress_bar", "result_writer"]

TABLE_HEADER = f"{'mean':>6}  {'std':>5}  path   (scores 0-9, higher is better)"


def result_writer(fmt: str):
    """A function that writes one result row (``None``: the end) to stdout as it comes: a table line, a CSV row, a
    JSON Lines object, or an element of one JSON array (streamed, so nothing waits for the last image)."""
    import csv
    import json

    from pynima.images import display_name as shown

    state = {"rows": 0}
    writer = csv.writer(sys.stdout) if fmt == "csv" else None
    if writer:
        writer.writerow(["path", "mean", "std"] + [f"p{k}" for k in range(BINS)] + ["warning", "error"])

    def write(row: dict | None) -> None:
        first = state["rows"] == 0
        if row is not None:
            state["rows"] += 1
        if fmt in ("json", "jsonl") and row is not None:
            text = json.dumps(dict(row, path=str(row["path"])))
        if fmt == "json":  # "[" ... "]" around the rows, an empty list when there are none
            print(
                ("[]" if first else "\n]") if row is None else ("[\n" if first else ",\n") + text,
                end="\n" if row is None else "",
            )
        elif fmt == "jsonl":
            if row is not None:
                print(text)
        elif writer:
            if row is not None:
                values = (
                    [f"{row['mean']:.4f}", f"{row['std']:.4f}"] + [f"{v:.5f}" for v in row["distribution"]]
                    if row["mean"] is not None
                    else [""] * 12
                )
                writer.writerow([shown(row["path"])] + values + [row["warning"] or "", row["error"] or ""])
        elif row is not None:  # the table
            if first:
                print(TABLE_HEADER)
            if row["mean"] is not None:
                note = f"  (warning: {row['warning']})" if row["warning"] else ""
                print(f"{row['mean']:6.3f}  {row['std']:5.3f}  {shown(row['path'])}{note}")
            else:
                print(f"{'-':>6}  {'-':>5}  {shown(row['path'])}  (error: {row['error']})")
        if fmt == "jsonl" or row is None:
            sys.stdout.flush()

    return write


def progress_bar(quiet: bool):
    """A progress bar on stderr (tqdm) that shows itself only after a second, on a terminal, without --quiet; its
    ``write`` prints a line above it (or plainly when there is no bar)."""
    from tqdm import tqdm

    return tqdm(unit=" images", file=sys.stderr, delay=1.0, disable=quiet or not sys.stderr.isatty(), leave=False)
