"""equiv.data.regimes: each training-rotation regime draws the angles it promises and fills with the
data's true background."""

from __future__ import annotations

import math

import pytest
import torch

from equiv.data import REGIME_NAMES, Normal, Rot90, Uniform, Upright, make_regime, mnist
from equiv.rotation import rotate

N = 20_000  # angles drawn for the statistical checks (cheap: no images are rotated)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def prepared():
    return mnist().prepared(28)


def ks_uniform_360(angles: torch.Tensor) -> float:
    """Kolmogorov-Smirnov distance between the sample and U[0, 360)."""
    u = torch.sort(angles.double() / 360.0).values
    n = u.numel()
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return float(torch.maximum(i / n - u, u - (i - 1) / n).max())


KS_CRITICAL_001 = 1.95  # / sqrt(n): the 0.1% critical value of the KS statistic


def test_factory_accepts_the_paper_names_and_dicts():
    assert REGIME_NAMES == ("upright", "normal45_sd20", "normal45_sd40", "uniform", "rot90")
    assert make_regime("upright") == Upright()
    assert make_regime("normal45_sd20") == Normal(mean=45.0, sd=20.0, per_batch=False)
    assert make_regime("normal45_sd40") == Normal(mean=45.0, sd=40.0)
    assert make_regime("normal45_sd20_perbatch") == Normal(mean=45.0, sd=20.0, per_batch=True)
    assert make_regime("uniform") == Uniform(mode="fixed", seed=0)
    assert make_regime("uniform_fresh") == Uniform(mode="fresh")
    assert make_regime("rot90") == Rot90()
    assert make_regime({"name": "normal", "mean": 10, "sd": 5, "per_batch": True}) == Normal(mean=10.0, sd=5.0, per_batch=True)
    for name in REGIME_NAMES + ("uniform_fresh", "normal45_sd20_perbatch"):
        r = make_regime(name, fill=0.5)
        assert make_regime(r.spec) == r and r.fill == (0.5,)


@pytest.mark.parametrize(
    "spec,needle",
    [
        ("normal", "'normal'"),
        ("gaussian45", "'gaussian45'"),
        ({"name": "spin"}, "'spin'"),
        ({"name": "normal", "sigma": 3}, "'sigma'"),
        ({"name": "normal", "sd": -1}, "sd=-1"),
        ({"name": "normal", "mean": float("nan")}, "mean=nan"),
        ({"name": "uniform", "mode": "sometimes"}, "'sometimes'"),
        (42, "42"),
    ],
)
def test_bad_specs_raise_value_errors_naming_the_value(spec, needle):
    with pytest.raises(ValueError) as info:
        make_regime(spec)
    msg = str(info.value)
    assert needle in msg and "allowed" in msg and "\n" not in msg
    if isinstance(spec, str):
        for name in REGIME_NAMES:
            assert name in msg


@pytest.mark.parametrize("sd", [20.0, 40.0])
def test_normal_per_sample_mean_and_sd(sd):
    angles = make_regime(f"normal45_sd{int(sd)}").angles(N, generator=gen(1))
    assert angles.shape == (N,) and angles.dtype == torch.float64
    se = sd / math.sqrt(N)
    assert abs(float(angles.mean()) - 45.0) < 4 * se
    assert abs(float(angles.std()) - sd) < 0.03 * sd
    assert len(torch.unique(angles)) == N  # one angle per sample


def test_normal_per_batch_gives_one_angle_per_batch():
    regime = make_regime("normal45_sd20_perbatch")
    g = gen(2)
    firsts = []
    for _ in range(2000):
        a = regime.angles(16, generator=g)
        assert torch.equal(a, a[:1].expand(16))
        firsts.append(float(a[0]))
    firsts_t = torch.tensor(firsts, dtype=torch.float64)
    assert abs(float(firsts_t.mean()) - 45.0) < 4 * 20 / math.sqrt(2000)
    assert abs(float(firsts_t.std()) - 20.0) < 0.08 * 20
    x = torch.rand(4, 1, 9, 9, generator=gen(3))
    out, used = regime(x, generator=gen(4), fill=0.0)
    assert torch.equal(out, rotate(x, float(used[0]), fill=0.0))


def test_uniform_fixed_depends_only_on_seed_and_index():
    regime = make_regime("uniform")
    idx = torch.arange(N)
    angles = regime.angles(N, indices=idx)
    assert float(angles.min()) >= 0.0 and float(angles.max()) < 360.0
    assert ks_uniform_360(angles) < KS_CRITICAL_001 / math.sqrt(N)
    perm = torch.randperm(N, generator=gen(5))[:500]
    assert torch.equal(regime.angles(500, indices=perm, epoch=7, generator=gen(9)), angles[perm])  # order/epoch/generator-free
    other = Uniform(seed=1).angles(N, indices=idx)
    assert not torch.equal(other, angles) and ks_uniform_360(other) < KS_CRITICAL_001 / math.sqrt(N)
    with pytest.raises(ValueError, match="indices"):
        regime(torch.zeros(2, 1, 5, 5), fill=0.0)


def test_uniform_fresh_draws_new_angles_every_call():
    regime = make_regime("uniform_fresh")
    g = gen(6)
    a, b = regime.angles(N, generator=g), regime.angles(N, generator=g)
    assert not torch.equal(a, b)
    for angles in (a, b):
        assert float(angles.min()) >= 0.0 and float(angles.max()) < 360.0
        assert ks_uniform_360(angles) < KS_CRITICAL_001 / math.sqrt(N)
    assert ks_uniform_360(torch.rand(N, dtype=torch.float64, generator=gen(7)) * 180.0) > 0.4  # the check can fail


def test_rot90_gives_exact_quarter_turns():
    regime = make_regime("rot90")
    angles = regime.angles(N, generator=gen(8))
    counts = torch.stack([(angles == a).sum() for a in (0.0, 90.0, 180.0, 270.0)])
    assert int(counts.sum()) == N
    assert float((counts.double() - N / 4).abs().max()) < 4 * math.sqrt(N * 0.25 * 0.75)
    x = torch.rand(64, 2, 7, 7, generator=gen(9))
    out, used = regime(x, generator=gen(10))  # no fill needed
    for i in range(64):
        assert torch.equal(out[i], torch.rot90(x[i], int(used[i]) // 90, dims=(-2, -1)))


def test_upright_returns_the_batch_unchanged():
    x = torch.rand(3, 1, 5, 5)
    out, used = make_regime("upright")(x)
    assert out is x and torch.equal(used, torch.zeros(3, dtype=torch.float64))


def test_generator_makes_draws_reproducible():
    x = torch.rand(8, 1, 9, 9, generator=gen(11))
    regime = make_regime("normal45_sd40", fill=0.0)
    a, angles_a = regime(x, generator=gen(12))
    b, angles_b = regime(x, generator=gen(12))
    assert torch.equal(a, b) and torch.equal(angles_a, angles_b)


def test_rotations_fill_with_the_true_background_of_the_data(prepared):
    fill = prepared.fill
    mean, std = prepared.mean[0], prepared.std[0]
    assert fill.shape == (1,) and float(fill[0]) == pytest.approx((0.0 - mean) / std, rel=1e-6) and float(fill[0]) < -0.3
    assert bool((prepared.train[0] == fill[0]).any())  # the fill value occurs in the data, bit for bit
    x, _, pos = next(prepared.batches("train", 32))
    for name in ("normal45_sd20", "normal45_sd40", "uniform", "uniform_fresh"):
        out, angles = make_regime(name, fill=fill)(x, pos, generator=gen(13))
        assert torch.equal(out, rotate(x, angles, fill=fill))
        corners = out[:, 0, [0, 0, -1, -1], [0, -1, 0, -1]]
        far = (torch.remainder(angles, 90.0) > 20) & (torch.remainder(angles, 90.0) < 70)
        assert far.any()
        assert torch.equal(corners[far], torch.full_like(corners[far], float(fill[0])))  # never a bright corner
        assert float(out.min()) >= float(fill[0])  # no value below the background appears
    with pytest.raises(ValueError, match="fill"):
        make_regime("normal45_sd20")(x, pos, generator=gen(14))
    raw = mnist().train[0][:8]
    out, _ = make_regime("uniform", fill=mnist().fill)(raw, torch.arange(8))
    assert float(mnist().fill[0]) == 0.0 and float(out.min()) == 0.0  # raw data: background 0


def test_apply_checks_its_inputs():
    regime = make_regime("rot90")
    with pytest.raises(ValueError, match="3 entries"):
        regime(torch.zeros(2, 1, 4, 4), [0, 1, 2])
    with pytest.raises(ValueError, match=r"\(1, 4, 4\)"):
        regime(torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="generator=3"):
        regime(torch.zeros(2, 1, 4, 4), generator=3)
