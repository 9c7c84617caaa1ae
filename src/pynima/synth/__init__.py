"""Re-synthesizing TID2013 from its reference photos: the 24 distortions, their calibrated levels, full-reference
pseudo-labels.
"""
