"""The model's scale and input, in one place: every module that needs them imports them from here.

NIMA predicts a distribution over ``BINS`` opinion scores 0..9 (TID2013's scale, ``SCORE_RANGE``; higher is better),
from ``CROP`` x ``CROP`` crops taken at the image's native resolution (or the whole image).
"""

BINS = 10  # the opinion scores 0, 1, ..., 9
SCORE_RANGE = (0.0, float(BINS - 1))  # worst, best: TID2013's 0-9 MOS scale, the model's own
CROP = 224  # the network's input crop, in training, evaluation and scoring
SHIFT = 16  # the largest shift, in pixels, that bench/shift_stability.py measures and --shift-weight trains against

__all__ = ["BINS", "CROP", "SCORE_RANGE", "SHIFT"]
