"""A first end-to-end check that the package imports and computes like torch."""

import ferrotorch as ft
import pytest
import torch
from conftest import LAYOUTS, assert_same, pair


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_add_matches_torch(layout, dtype):
    a, ta = pair((3, 4), dtype, layout, seed=1)
    b, tb = pair((4,), dtype, seed=2)
    assert_same(a + b, ta + tb)
    assert_same(a @ a.T, ta @ ta.T)


def test_manual_seed_gives_torchs_numbers():
    ft.manual_seed(123)
    torch.manual_seed(123)
    assert_same(ft.rand(3, 5), torch.rand(3, 5), rtol=0, atol=0)
    assert_same(ft.randn(40), torch.randn(40), rtol=0, atol=0)
