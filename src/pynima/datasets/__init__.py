"""Reading the datasets people train IQA models on, each in its official release layout (docs/datasets.md).

``read_dataset(root)`` detects the layout from the files present (``--format NAME`` forces it) and returns a
``Dataset``: its images as ``Record``s, every score mapped onto the model's 0-9 scale by the release's ``Scale`` (kept
to report predictions on the dataset's own scale), and the release's official split where it has one. Every problem
is one ``DatasetError`` line naming the file (and line or row), with the number of problems in all.

One module per release (``tid2013``, ``kadid10k``, ``koniq10k``, ``live``, ``csiq``, ``livec``, ``spaq``, ``ava``,
and ``table`` for a CSV file of one's own), because the releases differ in everything: label files (.txt, .csv, .mat,
.xlsx), scales and their direction (MOS or DMOS), whether a std, a variance or vote counts are given, and how the
reference and the distortion of an image are known. Each registers its reader (``registry.register``) when this
package is imported. pyiqa instead converts each release into its own meta-information CSVs first; pynima reads the
files users download, so there is no conversion step to get wrong.
"""

# imported for their registrations, in the order detection lists them
from pynima.datasets import tid2013, kadid10k, koniq10k, live, csiq, livec, spaq, ava, table  # noqa: F401, I001
from pynima.datasets.record import MODEL_SCALE, Dataset, Record, Scale
from pynima.datasets.registry import READERS, detect_format, read_config_dataset, read_dataset
from pynima.datasets.splits import apply_split, make_split, read_split

__all__ = [
    "MODEL_SCALE",
    "READERS",
    "Dataset",
    "Record",
    "Scale",
    "apply_split",
    "detect_format",
    "make_split",
    "read_config_dataset",
    "read_dataset",
    "read_split",
]
