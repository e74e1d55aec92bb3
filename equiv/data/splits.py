"""Train/validation/test splits held as tensors, and the seeded stratified splitter behind them.

:class:`ImageSplits` is what every loader (:func:`equiv.data.mnist`, :func:`~equiv.data.cifar10`,
:func:`~equiv.data.cifar100`, :func:`~equiv.data.pcam`) returns: three ``(x, y)`` pairs with
``x`` float32 ``(N, C, H, W)`` and ``y`` int64 ``(N,)``, plus what is needed to reproduce and describe
them (source, seed, sizes, the rows of the source files each split holds, training-split pixel
statistics and the background value).

:func:`stratified_split` draws disjoint index sets of exactly the requested sizes in which every class
has, in every split, ``floor`` or ``ceil`` of its proportional share (``size * n_class / N``): the
rounding is a small max-flow (controlled rounding), so sizes are exact and class proportions are off
by less than one sample.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from equiv.data.preprocess import as_size, channel_stats, normalize, resize
from equiv.reproducibility import make_generator
from equiv.validation import is_int

__all__ = ["ImageSplits", "SPLIT_NAMES", "stratified_split", "stratified_folds", "make_splits", "seeded_generator", "check_seed", "check_count"]

SPLIT_NAMES = ("train", "val", "test")


def check_seed(seed: Any) -> int:
    """``seed`` if it is a non-negative int, else a one-line ValueError."""
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed={seed!r} is invalid; allowed: a non-negative int")
    return int(seed)


def check_count(value: Any, name: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    """``value`` if it is an int in ``[minimum, maximum]``, else a one-line ValueError."""
    if not is_int(value) or value < minimum or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise ValueError(f"{name}={value!r} is invalid; allowed: an int >= {minimum}{upper}")
    return int(value)


def _controlled_rounding(sizes: Sequence[int], counts: Sequence[int]) -> np.ndarray:
    """Integer table ``t[s, c]`` with row sums ``sizes``, column sums ``counts`` (``sum(sizes) ==
    sum(counts)``) and every cell the floor or ceil of ``sizes[s] * counts[c] / N``."""
    total = sum(counts)
    rows, cols = len(sizes), len(counts)
    table = np.array([[s * n // total for n in counts] for s in sizes], dtype=np.int64)
    frac = np.array([[(s * n) % total != 0 for n in counts] for s in sizes], dtype=bool)
    row_need = [s - int(table[i].sum()) for i, s in enumerate(sizes)]
    col_need = [n - int(table[:, j].sum()) for j, n in enumerate(counts)]
    # max-flow: source -> row (row_need) -> cell (1, where fractional) -> column (col_need) -> sink.
    # A fractional solution (the fractional parts) exists, so an integral one of full value does too.
    col_flow = [0] * cols
    extra = np.zeros_like(table)
    for r in range(rows):
        for _ in range(row_need[r]):
            # BFS over alternating paths: row -> (unused fractional cell) -> col -> (used cell) -> row
            parent: dict[tuple[str, int], tuple[str, int] | None] = {("r", r): None}
            queue = deque([("r", r)])
            end = None
            while queue and end is None:
                kind, i = queue.popleft()
                if kind == "r":
                    for j in range(cols):
                        if frac[i, j] and not extra[i, j] and ("c", j) not in parent:
                            parent[("c", j)] = (kind, i)
                            if col_flow[j] < col_need[j]:
                                end = ("c", j)
                                break
                            queue.append(("c", j))
                else:
                    for i2 in range(rows):
                        if extra[i2, i] and ("r", i2) not in parent:
                            parent[("r", i2)] = (kind, i)
                            queue.append(("r", i2))
            if end is None:  # pragma: no cover - impossible by the integrality theorem
                raise AssertionError("controlled rounding failed")
            col_flow[end[1]] += 1
            node = end
            while parent[node] is not None:
                prev = parent[node]
                if node[0] == "c":  # prev is a row: use cell (prev row, this column)
                    extra[prev[1], node[1]] = 1
                else:  # node is a row reached from a column: free cell (this row, that column)
                    extra[node[1], prev[1]] = 0
                node = prev
    return table + extra


def stratified_split(labels: np.ndarray | torch.Tensor, sizes: Sequence[int], generator: torch.Generator) -> list[np.ndarray]:
    """Disjoint, seeded, stratified index sets of exactly ``sizes`` (``sum(sizes) <= len(labels)``).

    Within each class the rows are shuffled with ``generator`` and dealt to the splits in order; each
    split's indices are then shuffled again (so a split is not sorted by class). Every class gets, in
    every split, the floor or the ceil of its proportional share. Returns int64 numpy arrays.
    """
    y = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    n = y.shape[0]
    sizes = [check_count(s, "split size") for s in sizes]
    if sum(sizes) > n:
        raise ValueError(f"split sizes {sizes} add up to {sum(sizes)} > {n} available samples; allowed: a total <= {n}")
    classes, counts = np.unique(y, return_counts=True)
    table = _controlled_rounding(list(sizes) + [n - sum(sizes)], [int(c) for c in counts])
    parts: list[list[np.ndarray]] = [[] for _ in sizes]
    for j, cls in enumerate(classes):
        rows = np.flatnonzero(y == cls)
        rows = rows[torch.randperm(rows.size, generator=generator).numpy()]
        start = 0
        for s in range(len(sizes)):
            parts[s].append(rows[start : start + table[s, j]])
            start += table[s, j]
    out = []
    for chunks in parts:
        idx = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
        out.append(idx[torch.randperm(idx.size, generator=generator).numpy()].astype(np.int64))
    return out


def stratified_folds(labels: np.ndarray | torch.Tensor, folds: int, generator: torch.Generator) -> list[np.ndarray]:
    """``folds`` disjoint, stratified index sets that together hold every sample once (k-fold CV).

    Fold sizes differ by at most one (the first ``len(labels) % folds`` folds get the extra sample) and
    every class has, in every fold, the floor or the ceil of its share: :func:`stratified_split` with
    sizes that add up to ``len(labels)``. Same generator state, same folds."""
    y = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    k = check_count(folds, "folds", minimum=2, maximum=max(2, y.shape[0]))
    n = y.shape[0]
    return stratified_split(y, [n // k + (i < n % k) for i in range(k)], generator)


Split = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class ImageSplits:
    """Three ``(x, y)`` splits of an image classification dataset, held as tensors.

    Attributes:
        train, val, test: ``(x, y)`` with ``x`` float32 ``(N, C, H, W)`` and ``y`` int64 ``(N,)``.
            As loaded, ``x`` is in [0, 1]; after :meth:`prepared` it may be resized and normalised.
        dataset: ``"mnist"``, ``"cifar10"``, ``"cifar100"`` or ``"pcam"``.
        source: where the data came from (``"embedded"``, ``"full"``, ...).
        seed: the seed of the split (and of any subsampling).
        num_classes: number of classes.
        mean, std: per-channel pixel mean and population std of the *training split* in [0, 1] units,
            at the current image size (recomputed by :meth:`prepared` after resizing).
        background: the per-channel background pixel value in [0, 1] units (MNIST: 0.0), or None for
            data without a uniform background (natural images, histology).
        indices: for each split, the row of each sample in its source file(s) (see ``details``).
        normalized: whether ``x`` has been normalised with ``mean`` / ``std``.
        details: loader-specific provenance (protocol, files and their hashes, index sources).
    """

    train: Split
    val: Split
    test: Split
    dataset: str
    source: str
    seed: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    background: tuple[float, ...] | None
    indices: Mapping[str, torch.Tensor]
    normalized: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)

    # -- access -----------------------------------------------------------------------------
    def split(self, name: str) -> Split:
        """The ``(x, y)`` pair of split ``name`` (``train``, ``val`` or ``test``)."""
        if name not in SPLIT_NAMES:
            raise ValueError(f"unknown split {name!r}; allowed: {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)

    @property
    def sizes(self) -> dict[str, int]:
        """Number of samples per split."""
        return {s: int(self.split(s)[1].shape[0]) for s in SPLIT_NAMES}

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the images."""
        return tuple(self.train[0].shape[-2:])  # type: ignore[return-value]

    @property
    def channels(self) -> int:
        """Number of image channels."""
        return int(self.train[0].shape[1])

    @property
    def fill(self) -> torch.Tensor:
        """The background as a per-channel float32 tensor ``(C,)`` *in the space of x* (normalised if
        :attr:`normalized`): the value to fill rotations with. It occurs in the data bit-for-bit."""
        if self.background is None:
            raise ValueError(
                f"dataset {self.dataset!r} has no uniform background; allowed: pass an explicit fill, or rotate only by multiples of 90 degrees"
            )
        bg = torch.tensor(self.background, dtype=self.train[0].dtype).reshape(1, -1, 1, 1).expand(1, self.channels, 1, 1)
        if self.normalized:
            bg = normalize(bg, self.mean, self.std)
        return bg.reshape(-1).clone()

    # -- transforms ---------------------------------------------------------------------------
    def prepared(
        self,
        input_size: int | Sequence[int] | None = None,
        *,
        normalize: bool = True,
        device: str | torch.device | None = None,
    ) -> "ImageSplits":
        """Resize every split to ``input_size`` (:func:`equiv.data.resize`), recompute the training
        statistics at that size, normalise with them (if ``normalize``) and move to ``device``.

        ``input_size=None`` keeps the size. Raises ValueError on already-normalised splits.
        """
        if self.normalized:
            raise ValueError("these splits are already normalised; allowed: call prepared() on the splits as loaded")
        size = as_size(input_size, name="input_size") if input_size is not None else self.image_size
        xs = {s: resize(self.split(s)[0], size) for s in SPLIT_NAMES}
        mean, std = channel_stats(xs["train"])
        if normalize:
            if min(std) <= 0:
                raise ValueError(f"training split has a constant channel (std={std}); allowed: data with pixel variation")
            xs = {s: _normalize(x, mean, std) for s, x in xs.items()}
        new = {s: (xs[s], self.split(s)[1]) for s in SPLIT_NAMES}
        out = replace(self, **new, mean=mean, std=std, normalized=normalize, details={**self.details, "input_size": list(size)})
        return out.to(device) if device is not None else out

    def to(self, device: str | torch.device) -> "ImageSplits":
        """A copy with every tensor on ``device``."""
        new = {s: (self.split(s)[0].to(device), self.split(s)[1].to(device)) for s in SPLIT_NAMES}
        return replace(self, **new)

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y, positions)`` mini-batches of split ``split``; ``positions`` are the int64
        positions of the samples within the split (what the fixed-angle regimes key on)."""
        x, y = self.split(split)
        check_count(batch_size, "batch_size", minimum=1)
        n = y.shape[0]
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        stop = n - n % batch_size if drop_last else n
        for i in range(0, stop, batch_size):
            pos = order[i : i + batch_size]
            dev_pos = pos.to(x.device)
            yield x.index_select(0, dev_pos), y.index_select(0, dev_pos), pos

    # -- description ---------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """A JSON-able description (no tensors) for result files."""
        return {
            "dataset": self.dataset,
            "source": self.source,
            "seed": self.seed,
            "sizes": self.sizes,
            "num_classes": self.num_classes,
            "image_size": list(self.image_size),
            "channels": self.channels,
            "train_mean": list(self.mean),
            "train_std": list(self.std),
            "background": list(self.background) if self.background is not None else None,
            "normalized": self.normalized,
            "details": dict(self.details),
        }


def _normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    return normalize(x, mean, std)


def make_splits(
    data: Mapping[str, tuple[np.ndarray, np.ndarray]],
    parts: Mapping[str, np.ndarray],
    **meta: Any,
) -> ImageSplits:
    """Build :class:`ImageSplits` from, for each split, its source ``(images, labels)`` (uint8
    ``(N, C, H, W)`` and integer ``(N,)``) and the rows of that source it holds; computes the
    training-split statistics. ``meta`` are the remaining :class:`ImageSplits` fields."""
    from equiv.data.preprocess import to_float

    out: dict[str, Split] = {}
    for name in SPLIT_NAMES:
        images, labels = data[name]
        idx = np.asarray(parts[name], dtype=np.int64)
        out[name] = (to_float(images[idx]), torch.as_tensor(np.asarray(labels)[idx], dtype=torch.int64))
    mean, std = channel_stats(out["train"][0])
    indices = {name: torch.as_tensor(np.asarray(parts[name], dtype=np.int64)) for name in SPLIT_NAMES}
    return ImageSplits(**out, mean=mean, std=std, indices=indices, **meta)


def seeded_generator(seed: int) -> torch.Generator:
    """The generator every split of :mod:`equiv.data` is drawn with."""
    return make_generator(check_seed(seed))

