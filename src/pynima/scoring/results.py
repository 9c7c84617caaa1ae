"""One result row per input, the same wherever results go: ``pynima predict``'s table, CSV, JSON and JSON Lines,
the Parquet file of ``pynima predict --ray``, and each result of ``POST /v1/score`` (where the input's path is
called ``name``: an upload has a file name only).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pynima.images import display_name
from pynima.scoring.scorer import Score

__all__ = ["FIELDS", "Result", "without_name"]

FIELDS = ("mean", "std", "distribution", "warning", "error")  # after the input's path, in every output


def without_name(message: str | None, name: object) -> str | None:
    """A message without the file name it starts with (as display_name shows it): the row names the file already."""
    return message.removeprefix(f"{display_name(name)}: ") if message else message


@dataclass(frozen=True)
class Result:
    """One input's result: a score (``mean``, ``std``, ``distribution`` over 0-9, maybe a ``warning``), or the
    ``error`` that kept it from being scored, with the scores None.
    """

    path: str
    mean: float | None = None
    std: float | None = None
    distribution: tuple[float, ...] | None = None
    warning: str | None = None
    error: str | None = None

    @classmethod
    def of(cls, path: object, score: Score | None = None, error: str | None = None) -> Result:
        """The row of ``path`` from what scoring gave: its ``Score``, or the error message (None when scored).

        Args:
            path: the input as given (a path, or an upload's name).
            score: the input's score; None when it could not be scored.
            error: why it could not be scored; None when it was.

        Returns:
            The row, its warning and error without the file name they start with.
        """
        text = str(path)
        if score is None:
            return cls(text, error=without_name(error, path) or "not scored")
        return cls(
            text,
            score.mean,
            score.std,
            tuple(score.distribution),
            without_name(score.warning, path),
            without_name(error, path),
        )

    def as_dict(self, key: str = "path") -> dict:
        """The row as JSON gives it (the distribution a list); ``key``: what the input's path is called."""
        row = asdict(self)
        row[key] = row.pop("path")
        if self.distribution is not None:
            row["distribution"] = list(self.distribution)
        return {key: row[key]} | {f: row[f] for f in FIELDS}
