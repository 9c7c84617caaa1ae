"""Measuring a model: correlation metrics with intervals, evaluation of a checkpoint, plots, benchmark summaries,
reports.
"""
