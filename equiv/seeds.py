"""The one seed convention of equiv, for every runner, notebook and grid file.

- A **count** ``n`` means the seeds ``1, 2, …, n`` (:func:`seed_list`), in the experiment runners' ``seeds``
  parameter, in the notebooks' ``seeds`` parameter and in a grid file's ``seeds:`` key alike, so a 100-seed
  grid is ``seeds: 100`` and its runs are the notebook's seeds 1..100.
- A **list** is taken as written (any seeds from 0 to :data:`MAX_SEED`).
- Seed ``0`` is never part of a count: it is the seed of one-off runs (e.g. the rotated-MNIST study's
  convergence pilot), so that a pilot never doubles as a study run.
"""

from __future__ import annotations

from typing import Any

from equiv.validation import is_int

__all__ = ["MAX_SEED", "SEEDS_HELP", "seed_list", "is_seed_spec"]

MAX_SEED = 2**32 - 1  #: numpy's seeding takes 0 .. 2**32 - 1
SEEDS_HELP = "a count n >= 1 (seeds 1..n) or a list of seeds >= 0"


def is_seed_spec(value: Any) -> bool:
    """Whether ``value`` is a count >= 1 or a non-empty list of seeds in 0..MAX_SEED."""
    if is_int(value, numpy=False):
        return 1 <= value <= MAX_SEED
    return isinstance(value, list) and bool(value) and all(is_int(s, numpy=False) and 0 <= s <= MAX_SEED for s in value)


def seed_list(value: Any) -> list[int]:
    """The seeds of ``value``: a count ``n`` gives ``[1, …, n]``, a list is returned as a list; anything else is a
    one-line ValueError."""
    if not is_seed_spec(value):
        raise ValueError(f"seeds={value!r} is invalid; allowed: {SEEDS_HELP}")
    return list(range(1, value + 1)) if is_int(value, numpy=False) else list(value)
