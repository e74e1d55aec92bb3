"""The numerical thresholds of equiv, stated once: the library, the ledger, the notebooks and the tests import
them from here.

Equivariance errors are relative, ``‖f(g·x) − g·f(x)‖ / ‖f(x)‖``, measured in float64, where round-off is about
1e-16. The gap between :data:`EXACT_TOL` and :data:`BROKEN_MIN` (six orders of magnitude) is where no
measurement of ours has ever landed: an error is either round-off or a broken sampling grid.
"""

from __future__ import annotations

__all__ = ["EXACT_TOL", "BROKEN_MIN", "ASSERT_ATOL", "PLOT_FLOOR", "ACCURACY_DECIMALS"]

#: a float64 relative equivariance error at or below this is exact (round-off is ~1e-16)
EXACT_TOL = 1e-12
#: a relative error at or above this is broken (ten orders above round-off)
BROKEN_MIN = 1e-6
#: default absolute tolerance of :func:`equiv.testing.assert_equivariant` (float64 outputs of order 1)
ASSERT_ATOL = 1e-10
#: exact layers can give an error of exactly 0; log-scale figures draw such errors at this floor
PLOT_FLOOR = 1e-18
#: accuracies (in %) are rounded to this many decimals before they are compared across 90° rotations, so that
#: float32 summation order cannot make two identical predictions sets differ
ACCURACY_DECIMALS = 6
