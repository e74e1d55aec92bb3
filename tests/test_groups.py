"""Group axioms, the action is a homomorphism, and the convention matches torch.rot90 / torch.flip."""

from __future__ import annotations

import itertools

import pytest
import torch

from equiv.groups import P4, P4M, Z2, Element, get_group


@pytest.mark.parametrize("group", [Z2, P4, P4M])
def test_group_axioms(group) -> None:
    e = group.identity
    for a, b, c in itertools.product(group, repeat=3):
        assert group.compose(group.compose(a, b), c) == group.compose(a, group.compose(b, c))
    for a in group:
        assert group.compose(e, a) == a == group.compose(a, e)
        assert group.compose(a, group.inverse(a)) == e == group.compose(group.inverse(a), a)
        for b in group:
            assert group.compose(a, b) in group.elements  # closure
    # every row of the Cayley table is a permutation (Latin square)
    table = group.cayley_table
    for row in table:
        assert sorted(row.tolist()) == list(range(group.order))


def test_orders_and_non_commutativity() -> None:
    assert (Z2.order, P4.order, P4M.order) == (1, 4, 8)
    r, m = Element(0, 1), Element(1, 0)
    assert P4M.compose(r, m) != P4M.compose(m, r)  # D4 is not abelian
    assert P4M.compose(P4M.compose(m, r), m) == P4M.inverse(r)  # m r m = r^-1


def test_convention_is_torch_rot90_and_flip() -> None:
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float64).reshape(2, 3, 5, 5)
    assert torch.equal(P4.act(Element(0, 1), x), torch.rot90(x, 1, dims=(-2, -1)))
    assert torch.equal(P4.act(Element(0, 3), x), torch.rot90(x, -1, dims=(-2, -1)))
    assert torch.equal(P4M.act(Element(1, 0), x), torch.flip(x, dims=(-1,)))
    assert torch.equal(P4M.act(Element(1, 2), x), torch.rot90(torch.flip(x, dims=(-1,)), 2, dims=(-2, -1)))


@pytest.mark.parametrize("group", [P4, P4M])
@pytest.mark.parametrize("rank", [4, 5])
def test_action_is_a_homomorphism(group, rank) -> None:
    shape = (2, 3, 6, 6) if rank == 4 else (2, 3, group.order, 6, 6)
    x = torch.randn(*shape, dtype=torch.float64)
    for a, b in itertools.product(group, repeat=2):
        lhs = group.act(a, group.act(b, x))
        rhs = group.act(group.compose(a, b), x)
        assert torch.equal(lhs, rhs), (a, b)
    assert torch.equal(group.act(group.identity, x), x)


def test_group_map_action_permutes_the_group_axis_regularly() -> None:
    # a map that is constant in space and equals the element index along the group axis
    f = torch.arange(8, dtype=torch.float64).view(1, 1, 8, 1, 1).expand(1, 1, 8, 3, 3)
    for g in P4M:
        out = P4M.act(g, f)[0, 0, :, 0, 0].long().tolist()
        # (g·F)(h) = F(g^-1 h)
        assert out == [P4M.index(P4M.compose(P4M.inverse(g), h)) for h in P4M]
    # for P4 the rotation r is a cyclic shift of the group axis by one
    f4 = torch.randn(1, 2, 4, 5, 5, dtype=torch.float64)
    assert torch.equal(P4.act(Element(0, 1), f4), torch.rot90(torch.roll(f4, 1, dims=2), 1, dims=(-2, -1)))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown group 'p6'"):
        get_group("p6")
    with pytest.raises(ValueError, match="group axis of size 4"):
        P4.act(Element(0, 1), torch.zeros(1, 1, 3, 5, 5))
    with pytest.raises(ValueError, match="shape"):
        P4.act(Element(0, 1), torch.zeros(5, 5))
    with pytest.raises(ValueError, match="square"):
        P4.act(Element(0, 1), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="not in group p4"):
        P4.index(Element(1, 0))


def test_p4m_group_axis_permutations_written_out() -> None:
    """``p[i] = index(g⁻¹ h_i)`` worked by hand from ``m r^k m = r^{-k}`` (axis order e, r, r2, r3, m, rm, r2m, r3m)."""
    r, m = Element(0, 1), Element(1, 0)
    assert P4M.permutation(m).tolist() == [4, 7, 6, 5, 0, 3, 2, 1]
    assert P4M.permutation(r).tolist() == [3, 0, 1, 2, 7, 4, 5, 6]
    assert P4.permutation(r).tolist() == [3, 0, 1, 2]
    f = torch.randn(2, 3, 8, 5, 5, dtype=torch.float64)
    assert torch.equal(P4M.act(r, f), torch.rot90(f[:, :, [3, 0, 1, 2, 7, 4, 5, 6]], 1, dims=(-2, -1)))
    assert torch.equal(P4M.act(m, f), torch.flip(f[:, :, [4, 7, 6, 5, 0, 3, 2, 1]], dims=(-1,)))
