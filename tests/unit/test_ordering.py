from hypothesis import given
from hypothesis import strategies as st

from pytest_isolate.ordering import collected_order_within


def test_a_shuffled_domain_gets_its_collected_order_back_in_its_own_positions() -> None:
    # Collected: a0 a1 f a2; shuffled to: a2 f a0 a1 (ranks 3 2 0 1).
    rank = [3, 2, 0, 1]
    domains = [(0, 2, 3), (1,)]
    order = collected_order_within(rank, domains)
    assert [rank[i] for i in order] == [0, 2, 1, 3]


def test_free_tests_keep_the_shuffle() -> None:
    rank = [2, 0, 1]
    assert collected_order_within(rank, [(0,), (1,), (2,)]) == [0, 1, 2]


@given(st.permutations(range(8)), st.integers(0, 2**8 - 1))
def test_a_permutation_that_keeps_every_domain_in_rank_order(perm: list[int], mask: int) -> None:
    domain = tuple(i for i in range(8) if mask >> i & 1)
    others = [(i,) for i in range(8) if not mask >> i & 1]
    order = collected_order_within(perm, [domain, *others])
    assert sorted(order) == list(range(8))
    ranks_in_domain = [perm[i] for i in order if i in domain]
    assert ranks_in_domain == sorted(ranks_in_domain)
    # The domain occupies the same positions as before, the rest did not move.
    assert {p for p, i in enumerate(order) if i in domain} == set(domain)
    assert all(order[p] == p for p in range(8) if p not in domain)
