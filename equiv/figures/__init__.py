"""Figures for the book: each function takes tidy DataFrames and returns a matplotlib ``Figure``.

A figure function draws that one figure and nothing else (no ``plt.show``, no file, no text on the page) and
computes no result: every number it shows comes from a table of the library (:mod:`equiv.experiments`,
:mod:`equiv.grid_sweep`, :mod:`equiv.sampling_grid`, :mod:`equiv.study`, ...), so that a chapter's cell reads:
parameters, one library call, one figure. Every figure is :data:`WIDTH` inches wide, so that every figure of
the book spans the page's content width (the browser test of the book checks that it does).

One module per chapter:

=======================================  ================================================================
:mod:`equiv.figures.sampling_grids`      the sampling-grid window diagram, predicted against measured
:mod:`equiv.figures.architectures`       the size sweeps and the layer-wise errors of the four networks
:mod:`equiv.figures.rotated_mnist`       accuracy against test angle, ours beside the paper's runs
:mod:`equiv.figures.study`               the powered study's curves (pilot, validation, test angle)
:mod:`equiv.figures.layerwise`           the training-dynamics chapter's per-layer errors
:mod:`equiv.figures.unequivariance`      the probe's training images, loss curves and feature maps
:mod:`equiv.figures.benchmark`           the benchmark protocol's accuracy per test rotation
=======================================  ================================================================

Where a chapter sets a seaborn theme (``sns.set_theme``), the figures follow it; they set none themselves.
"""

from __future__ import annotations

__all__ = ["WIDTH", "VERDICT_COLOURS", "VERDICT_ORDER"]

#: the width of every figure of the book in inches: the content width of a page
WIDTH = 12.0
#: one colour per verdict of the exactness predictor, the same on every figure
VERDICT_COLOURS = {"exact": "C0", "approximate": "C3"}
#: the order in which legends list the verdicts
VERDICT_ORDER = ("exact", "approximate")
