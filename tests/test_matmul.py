"""Differential tests of matrix products (@, matmul, mm, bmm, outer, dot, addmm, einsum) against
torch. Every expected value is computed by torch in the test."""

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import (
    LAYOUTS,
    TOLERANCE,
    assert_same,
    cuda_differs,
    pair,
    skip_if_cuda_differs,
    to_ft,
)

FLOATS = ["float32", "float64"]
NAN = float("nan")
EPS = {"float32": 2.0 ** -23, "float64": 2.0 ** -52}


def mm_tol(k, dtype, scale=9.0):
    """(rtol, atol) for a product summing k terms of magnitude <= scale: the default table
    for short sums, widened to the worst-case rounding bound k * eps * scale for long ones."""
    if dtype not in EPS:
        return 0, 0
    r, a = TOLERANCE[dtype]
    return max(r, 8 * EPS[dtype] * k ** 0.5), max(a, k * EPS[dtype] * scale)


MATMUL_SHAPES = [
    ((4,), (4,)),              # 1-D . 1-D -> scalar
    ((3, 4), (4,)),            # 2-D . 1-D
    ((4,), (4, 5)),            # 1-D . 2-D
    ((3, 4), (4, 5)),          # 2-D . 2-D
    ((2, 3, 4), (2, 4, 5)),    # batched
    ((2, 3, 4), (4, 5)),       # batched . matrix
    ((3, 4), (2, 4, 5)),       # matrix . batched
    ((2, 1, 3, 4), (5, 4, 2)), # broadcast batch dims
    ((2, 3, 4), (4,)),         # batched . vector
    ((4,), (2, 4, 5)),         # vector . batched
    ((1, 3, 4), (6, 4, 2)),
    ((1, 1), (1, 1)),
    ((1,), (1,)),
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", FLOATS)
def test_matmul_shapes(dtype, shapes):
    a, ta = pair(shapes[0], dtype, seed=1)
    b, tb = pair(shapes[1], dtype, seed=2)
    assert_same(a @ b, ta @ tb)
    assert_same(a.matmul(b), ta.matmul(tb))
    assert_same(ft.matmul(a, b), torch.matmul(ta, tb))


@pytest.mark.parametrize("layout_b", LAYOUTS)
@pytest.mark.parametrize("layout_a", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_matmul_layouts(dtype, layout_a, layout_b):
    a, ta = pair((5, 7), dtype, layout_a, seed=3)
    b, tb = pair((7, 6), dtype, layout_b, seed=4)
    assert_same(a @ b, ta @ tb)
    assert_same(a.mm(b), ta.mm(tb))
    a3, ta3 = pair((3, 5, 7), dtype, layout_a, seed=5)
    b3, tb3 = pair((3, 7, 6), dtype, layout_b, seed=6)
    assert_same(a3 @ b3, ta3 @ tb3)
    assert_same(a3.bmm(b3), ta3.bmm(tb3))
    v, tv = pair((7,), dtype, layout_b, seed=7)
    assert_same(a @ v, ta @ tv)


@pytest.mark.parametrize("dtype", FLOATS)
def test_matmul_transposed_views(dtype):
    a, ta = pair((6, 4), dtype, seed=8)
    b, tb = pair((6, 5), dtype, seed=9)
    assert_same(a.T @ b, ta.T @ tb)
    assert_same(a.t().mm(b), ta.t().mm(tb))
    assert_same(b.T @ a, tb.T @ ta)
    assert_same(a @ a.T, ta @ ta.T)
    c, tc = pair((2, 6, 4), dtype, seed=10)
    assert_same(c.transpose(1, 2) @ c, tc.transpose(1, 2) @ tc)
    assert_same(c.mT @ c, tc.mT @ tc)
    # a permuted batch (batch stride is not the largest) times a transposed matrix
    assert_same(c.permute(1, 0, 2) @ a.T, tc.permute(1, 0, 2) @ ta.T)


@pytest.mark.parametrize("dtype", FLOATS)
def test_matmul_sliced_views(dtype):
    a, ta = pair((8, 9), dtype, seed=11)
    b, tb = pair((9, 10), dtype, seed=12)
    assert_same(a[1:6, ::2] @ b[::2, 3:7], ta[1:6, ::2] @ tb[::2, 3:7])
    assert_same(a[2] @ b, ta[2] @ tb)
    assert_same(a[:, 3] @ b[:8], ta[:, 3] @ tb[:8])
    assert_same(a[::3, ::3] @ b[::3, ::3], ta[::3, ::3] @ tb[::3, ::3])
    # an expanded (stride 0) operand
    v, tv = pair((1, 9), dtype, seed=13)
    assert_same(v.expand(4, 9) @ b, tv.expand(4, 9) @ tb)


@cuda_differs("torch has no integer matmul on CUDA (addmm_cuda is not implemented for Long)")
def test_matmul_int64():
    a, ta = pair((3, 4), "int64", "transposed", seed=14, low=-9, high=9)
    b, tb = pair((4, 5), "int64", "sliced", seed=15, low=-9, high=9)
    assert_same(a @ b, ta @ tb)
    assert_same(a.mm(b), ta.mm(tb))
    v, tv = pair((4,), "int64", seed=16)
    assert_same(a @ v, ta @ tv)
    assert_same(v @ v, tv @ tv)
    a3, ta3 = pair((2, 3, 4), "int64", seed=17)
    b3, tb3 = pair((2, 4, 2), "int64", seed=18)
    assert_same(a3 @ b3, ta3 @ tb3)
    assert_same(a3.bmm(b3), ta3.bmm(tb3))


def test_matmul_mixed_dtypes_raise():
    with pytest.raises(RuntimeError):
        torch.zeros(2, 3) @ torch.zeros(3, 4, dtype=torch.float64)
    with pytest.raises(RuntimeError):
        ft.zeros(2, 3) @ ft.zeros(3, 4, dtype=ft.float64)
    with pytest.raises(RuntimeError):
        ft.zeros(2, 3) @ ft.zeros(3, 4, dtype=ft.int64)
    with pytest.raises(RuntimeError):
        ft.dot(ft.zeros(3), ft.zeros(3, dtype=ft.float64))


@pytest.mark.parametrize("dtype", FLOATS)
def test_matmul_large(dtype):
    a, ta = pair((300, 200), dtype, seed=19)
    b, tb = pair((200, 500), dtype, seed=20)
    rtol, atol = mm_tol(200, dtype)
    assert_same(a @ b, ta @ tb, rtol=rtol, atol=atol)
    # also against the exact (float64) product, with the same bound
    exact = (ta.double() @ tb.double()).to(ta.dtype)
    assert_same(a @ b, exact, rtol=rtol, atol=atol)


def test_matmul_large_batched_transposed():
    a, ta = pair((4, 64, 96), "float32", seed=21)
    b, tb = pair((4, 80, 96), "float32", seed=22)
    rtol, atol = mm_tol(96, "float32")
    assert_same(a @ b.transpose(1, 2), ta @ tb.transpose(1, 2), rtol=rtol, atol=atol)
    assert_same(a.transpose(1, 2) @ a, ta.transpose(1, 2) @ ta, rtol=rtol, atol=mm_tol(64, "float32")[1])


# x @ W.T with W stored row-major (every Linear forward): long rows, or a weight small enough
# to copy in one piece, are transposed into a row-major scratch before the GEMM, in blocks of
# 16 MiB (so the float32 1100 x 4000 weight goes in two blocks); ragged sizes test the edges
# of the 8 x 8 vector transposes.
TRANSPOSED_WEIGHTS = [(17, 1100, 4000), (33, 300, 333), (16, 1030, 64), (40, 2100, 1030)]


@pytest.mark.parametrize("m,k,n", TRANSPOSED_WEIGHTS, ids=str)
@pytest.mark.parametrize("dtype", FLOATS)
def test_matmul_transposed_weight(dtype, m, k, n):
    x, tx = pair((m, k), dtype, seed=26, low=-1, high=1)
    w, tw = pair((n, k), dtype, seed=27, low=-1, high=1)
    rtol, atol = mm_tol(k, dtype, scale=1.0)
    assert_same(x @ w.t(), tx @ tw.t(), rtol=rtol, atol=atol)
    b, tb = pair((n,), dtype, seed=28)
    assert_same(ft.nn.functional.linear(x, w, b), torch.nn.functional.linear(tx, tw, tb),
                rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", FLOATS)
def test_linear_transposed_weight_views(dtype):
    # A weight that is a column slice of a wider matrix (rows 1200 apart, starting mid-row)
    # and a batched, transposed input.
    x, tx = pair((3, 1030, 7), dtype, seed=29, low=-1, high=1)
    x, tx = x.transpose(1, 2), tx.transpose(1, 2)
    w, tw = pair((300, 1200), dtype, seed=30, low=-1, high=1)
    w, tw = w[5:, 100:1130], tw[5:, 100:1130]
    rtol, atol = mm_tol(1030, dtype, scale=1.0)
    assert_same(ft.nn.functional.linear(x, w), torch.nn.functional.linear(tx, tw),
                rtol=rtol, atol=atol)


# Every layout pair of the float32 GEMM kernels (row-major or transposed, each side), around
# their block edges: 8-row blocks of the left operand (rows 4..67), 48-column panels of the
# right (columns 47..145), 128-deep stretches (k 129..6000), one or several column sweeps
# (4099 columns: the LM head's shape), a few MiB of left operand (512 x 3000).
GEMM_EDGES = [(4, 1025, 97), (13, 255, 145), (67, 129, 47), (20, 640, 4099), (512, 3000, 100),
              (9, 6000, 300)]


@pytest.mark.parametrize("m,k,n", GEMM_EDGES, ids=str)
@pytest.mark.parametrize("lhs_t", [False, True], ids=["a", "a.T"])
@pytest.mark.parametrize("rhs_t", [False, True], ids=["b", "b.T"])
def test_matmul_layouts_and_block_edges(m, k, n, lhs_t, rhs_t):
    a, ta = pair((k, m) if lhs_t else (m, k), "float32", seed=31, low=-1, high=1)
    b, tb = pair((n, k) if rhs_t else (k, n), "float32", seed=32, low=-1, high=1)
    if lhs_t:
        a, ta = a.t(), ta.t()
    if rhs_t:
        b, tb = b.t(), tb.t()
    # A row of zeros: its products are +-0.0, and the sums +0.0 (torch's BLAS starts them
    # from +0.0).
    a[1] = 0.0
    ta[1] = 0.0
    rtol, atol = mm_tol(k, "float32", scale=1.0)
    ours, theirs = a @ b, ta @ tb
    assert_same(ours, theirs, rtol=rtol, atol=atol)
    assert np.array_equal(np.signbit(ours[1].cpu().numpy()), np.signbit(theirs[1].numpy()))
    # Linear with a bias, which the GEMM adds the products to.
    c, tc = pair((n,), "float32", seed=33)
    assert_same(ft.nn.functional.linear(a, b.t(), c), torch.nn.functional.linear(ta, tb.t(), tc),
                rtol=rtol, atol=atol)


def test_matmul_long_dot_product():
    a, ta = pair((10000,), "float32", seed=23)
    b, tb = pair((10000,), "float32", seed=24)
    rtol, atol = mm_tol(10000, "float32")
    assert_same(a @ b, ta @ tb, rtol=rtol, atol=atol)
    assert_same(a.dot(b), ta.double().dot(tb.double()).float(), rtol=rtol, atol=atol)


ZERO_SIZE = [
    ((2, 0), (0, 3)),     # k = 0 -> zeros
    ((0, 3), (3, 4)),
    ((3, 4), (4, 0)),
    ((0,), (0,)),         # empty dot -> 0
    ((2, 0), (0,)),
    ((0, 2, 3), (3, 4)),
    ((2, 2, 0), (2, 0, 5)),
    ((0, 3), (0, 3, 2)),
]


@pytest.mark.parametrize("shapes", ZERO_SIZE, ids=str)
@pytest.mark.parametrize("dtype", FLOATS + ["int64"])
def test_matmul_zero_size(dtype, shapes):
    a, ta = pair(shapes[0], dtype, seed=25)
    b, tb = pair(shapes[1], dtype, seed=26)
    assert_same(a @ b, ta @ tb)


def test_matmul_propagates_nan():
    ta = torch.tensor([[1.0, NAN], [0.0, 1.0]])
    tb = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    a, b = to_ft(ta), to_ft(tb)
    assert_same(a @ b, ta @ tb)
    assert_same(b @ a, tb @ ta)
    # 0 * inf = nan must appear, as in torch
    ti = torch.tensor([[float("inf"), 0.0]])
    assert_same(to_ft(ti) @ b, ti @ tb)


# *** errors ***

def test_mismatched_shapes_message():
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"):
        torch.zeros(2, 3) @ torch.zeros(4, 5)
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"):
        ft.zeros(2, 3) @ ft.zeros(4, 5)
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"):
        ft.zeros(2, 3).mm(ft.zeros(4, 5))
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"):
        ft.matmul(ft.zeros(2, 3), ft.zeros(4, 5))


@pytest.mark.parametrize("shapes", [
    ((3,), (4,)),
    ((2, 3), (4,)),
    ((4,), (3, 2)),
    ((2, 3, 4), (2, 5, 6)),
    ((2, 3, 4), (3, 4, 6)),
    ((), (3,)),
    ((3,), ()),
], ids=str)
def test_matmul_incompatible_raises(shapes):
    with pytest.raises(RuntimeError):
        torch.zeros(shapes[0]) @ torch.zeros(shapes[1])
    with pytest.raises(RuntimeError):
        ft.zeros(shapes[0]) @ ft.zeros(shapes[1])


def test_mm_bmm_dot_outer_rank_errors():
    for f, shapes in [("mm", ((2, 3, 4), (4, 5))), ("mm", ((3,), (3, 2))),
                      ("bmm", ((3, 4), (4, 5))), ("bmm", ((2, 3, 4), (3, 4, 5))),
                      ("dot", ((2, 3), (2, 3))), ("dot", ((3,), (4,)))]:
        with pytest.raises(RuntimeError):
            getattr(torch, f)(torch.zeros(shapes[0]), torch.zeros(shapes[1]))
        with pytest.raises(RuntimeError):
            getattr(ft, f)(ft.zeros(shapes[0]), ft.zeros(shapes[1]))


# *** mm, bmm, outer, dot, addmm ***

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS + ["int64"])
def test_mm_bmm_outer_dot(dtype, layout):
    if dtype == "int64":
        skip_if_cuda_differs("torch has no integer matmul on CUDA")
    a, ta = pair((3, 4), dtype, layout, seed=27)
    b, tb = pair((4, 2), dtype, layout, seed=28)
    assert_same(ft.mm(a, b), torch.mm(ta, tb))
    assert_same(a.mm(b), ta.mm(tb))
    a3, ta3 = pair((2, 3, 4), dtype, layout, seed=29)
    b3, tb3 = pair((2, 4, 5), dtype, layout, seed=30)
    assert_same(ft.bmm(a3, b3), torch.bmm(ta3, tb3))
    u, tu = pair((5,), dtype, layout, seed=31)
    v, tv = pair((3,), dtype, seed=32)
    assert_same(ft.outer(u, v), torch.outer(tu, tv))
    assert_same(u.outer(v), tu.outer(tv))
    w, tw = pair((5,), dtype, seed=33)
    assert_same(ft.dot(u, w), torch.dot(tu, tw))
    assert_same(u.dot(w), tu.dot(tw))
    assert_same(a[:, 1].dot(b[:3, 0]), ta[:, 1].dot(tb[:3, 0]))


def test_outer_mixed_dtypes_promotes():
    u, tu = pair((3,), "int64", seed=34)
    v, tv = pair((2,), "float32", seed=35)
    assert_same(ft.outer(u, v), torch.outer(tu, tv))


@pytest.mark.parametrize("bias_shape", [(3, 5), (5,), (1, 5), (3, 1), ()], ids=str)
@pytest.mark.parametrize("dtype", FLOATS)
def test_addmm(dtype, bias_shape):
    inp, tinp = pair(bias_shape, dtype, seed=36)
    m1, tm1 = pair((3, 4), dtype, "transposed", seed=37)
    m2, tm2 = pair((4, 5), dtype, "sliced", seed=38)
    assert_same(ft.addmm(inp, m1, m2), torch.addmm(tinp, tm1, tm2))
    assert_same(ft.addmm(inp, m1, m2, beta=0.5, alpha=2), torch.addmm(tinp, tm1, tm2, beta=0.5, alpha=2))
    assert_same(ft.addmm(inp, m1, m2, alpha=-1), torch.addmm(tinp, tm1, tm2, alpha=-1))
    assert_same(ft.addmm(inp, m1, m2, beta=2), torch.addmm(tinp, tm1, tm2, beta=2))


def test_addmm_beta_zero_ignores_nan_input():
    # torch: "If beta is 0, then input will be ignored, and nan and inf in it will not be propagated"
    tinp = torch.full((3, 5), NAN)
    m1, tm1 = pair((3, 4), "float32", seed=39)
    m2, tm2 = pair((4, 5), "float32", seed=40)
    assert_same(ft.addmm(to_ft(tinp), m1, m2, beta=0), torch.addmm(tinp, tm1, tm2, beta=0))


def test_addmm_alpha_zero():
    inp, tinp = pair((3, 5), "float64", seed=41)
    m1, tm1 = pair((3, 4), "float64", seed=42)
    m2, tm2 = pair((4, 5), "float64", seed=43)
    assert_same(ft.addmm(inp, m1, m2, alpha=0), torch.addmm(tinp, tm1, tm2, alpha=0))


@cuda_differs("torch has no integer matmul on CUDA (addmm_cuda is not implemented for Long)")
def test_addmm_int64():
    inp, tinp = pair((5,), "int64", seed=44)
    m1, tm1 = pair((3, 4), "int64", seed=45)
    m2, tm2 = pair((4, 5), "int64", seed=46)
    assert_same(ft.addmm(inp, m1, m2, beta=2, alpha=3), torch.addmm(tinp, tm1, tm2, beta=2, alpha=3))


def test_addmm_bad_input_shape_raises():
    with pytest.raises(RuntimeError):
        torch.addmm(torch.zeros(4), torch.zeros(3, 4), torch.zeros(4, 5))
    with pytest.raises(RuntimeError):
        ft.addmm(ft.zeros(4), ft.zeros(3, 4), ft.zeros(4, 5))


# *** einsum ***

EINSUM_CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("i,i->", [(7,), (7,)]),
    ("ij->ji", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij->i", [(3, 4)]),
    ("ij->j", [(3, 4)]),
    ("ij,kj->ik", [(3, 4), (5, 4)]),
    ("ji,jk->ik", [(4, 3), (4, 5)]),
    ("bij,bkj->bik", [(2, 3, 4), (2, 5, 4)]),
    ("ij,ij->ij", [(3, 4), (3, 4)]),
    ("ij,ij->", [(3, 4), (3, 4)]),
    ("ij,j->i", [(3, 4), (4,)]),
    ("bhqk,bhkd->bhqd", [(2, 3, 4, 6), (2, 3, 6, 5)]),
    ("ijk->kji", [(2, 3, 4)]),
    ("ij,jk", [(3, 4), (4, 5)]),          # implicit output: sorted free indices
    ("ba,ac", [(3, 4), (4, 5)]),          # implicit output 'bc'
    ("i,i", [(5,), (5,)]),                # implicit: scalar
    ("ij,jk->ki", [(3, 4), (4, 5)]),
    (" ij , jk -> ik ", [(3, 4), (4, 5)]),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", range(len(EINSUM_CASES)),
                         ids=[c[0].replace(" ", "_") for c in EINSUM_CASES])
def test_einsum(case, dtype, layout):
    eq, shapes = EINSUM_CASES[case]
    pairs = [pair(s, dtype, layout, seed=47 + i) for i, s in enumerate(shapes)]
    ours = [p[0] for p in pairs]
    theirs = [p[1] for p in pairs]
    assert_same(ft.einsum(eq, *ours), torch.einsum(eq, *theirs))


@cuda_differs("torch has no integer matmul on CUDA (addmm_cuda is not implemented for Long)")
def test_einsum_list_operands_and_int():
    a, ta = pair((3, 4), "int64", seed=50)
    b, tb = pair((4, 2), "int64", seed=51)
    assert_same(ft.einsum("ij,jk->ik", [a, b]), torch.einsum("ij,jk->ik", [ta, tb]))
    assert_same(ft.einsum("ij->", a), torch.einsum("ij->", ta))


def test_einsum_zero_size():
    a, ta = pair((3, 0), "float32", seed=52)
    b, tb = pair((0, 5), "float32", seed=53)
    assert_same(ft.einsum("ij,jk->ik", a, b), torch.einsum("ij,jk->ik", ta, tb))


def test_einsum_broadcast_size_one():
    a, ta = pair((2, 1, 3, 4), "float32", seed=54)
    b, tb = pair((2, 5, 4, 6), "float32", seed=55)
    assert_same(ft.einsum("bhij,bhjk->bhik", a, b), torch.einsum("bhij,bhjk->bhik", ta, tb))


def test_einsum_mismatched_sizes_raise():
    with pytest.raises(RuntimeError):
        torch.einsum("ij,jk->ik", torch.zeros(2, 3), torch.zeros(4, 5))
    with pytest.raises(RuntimeError):
        ft.einsum("ij,jk->ik", ft.zeros(2, 3), ft.zeros(4, 5))


def test_einsum_repeated_index_diagonal():
    a, ta = pair((4, 4), "float64", seed=56)
    assert_same(ft.einsum("ii->", a), torch.einsum("ii->", ta))
    assert_same(ft.einsum("ii->i", a), torch.einsum("ii->i", ta))


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (2, 1, 1), (1, 1, 2), (3, 1, 5), (10, 1, 5),
                                   (3, 2, 5), (1, 3, 5), (5, 3, 1), (64, 64, 64), (1, 64, 64)])
@pytest.mark.parametrize("transposed", [False, True])
@cuda_differs("cuBLAS gives +0.0 where torch's CPU matmul gives -0.0")
def test_matmul_signs_of_zeros_like_torch(m, k, n, transposed):
    # 0 * negative products: torch's BLAS keeps -0.0 only for k = 1 products of matrices.
    ta = torch.zeros(m, k)
    tb = -torch.ones(k, n)
    if transposed:
        ta = torch.zeros(k, m).t()
    ours = to_ft(ta.contiguous()).t().contiguous().t() if transposed else to_ft(ta)
    theirs = ta @ tb
    got = ours @ to_ft(tb)
    assert got.cpu().numpy().tobytes() == theirs.numpy().tobytes()
