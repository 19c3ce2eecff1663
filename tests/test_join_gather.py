"""Differential tests of joining (cat, stack, repeat), gathering/scattering (gather, scatter,
index_select, take_along_dim, masked_select, advanced indexing) and ordering (topk, sort, argsort,
nonzero, multinomial) against torch. Every expected value is computed by torch in the test."""

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import DTYPES, LAYOUTS, assert_same, make_layout, pair, skip_if_cuda_differs, to_ft

FLOATS = ["float32", "float64"]
ALL = FLOATS + ["int64", "bool"]


def index_pair(shape, high, seed, low=0):
    """An int64 index tensor pair with values in [low, high)."""
    g = np.random.default_rng(seed)
    t = torch.tensor(g.integers(low, high, size=shape), dtype=torch.int64)
    return to_ft(t), t


def perm_index_pair(shape, dim, size, seed):
    """An int64 index tensor whose entries along `dim` are distinct values in [0, size)
    (so scatter has no duplicate targets and its result is deterministic)."""
    g = np.random.default_rng(seed)
    shape = list(shape)
    dim = dim % len(shape)
    n = shape[dim]
    moved = [s for i, s in enumerate(shape) if i != dim]
    rows = int(np.prod(moved)) if moved else 1
    vals = np.stack([g.permutation(size)[:n] for _ in range(rows)])  # (rows, n)
    vals = vals.reshape(moved + [n])
    vals = np.moveaxis(vals, -1, dim)
    t = torch.tensor(np.ascontiguousarray(vals), dtype=torch.int64)
    return to_ft(t), t


# *** cat ***

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2, -3])
@pytest.mark.parametrize("dtype", ALL)
def test_cat(dtype, dim, layout):
    shape_a = [2, 3, 4]
    shape_b = [2, 3, 4]
    shape_b[dim] = 5
    a, ta = pair(tuple(shape_a), dtype, layout, seed=1)
    b, tb = pair(tuple(shape_b), dtype, layout, seed=2)
    c, tc = pair(tuple(shape_a), dtype, "contiguous", seed=3)
    assert_same(ft.cat([a, b, c], dim), torch.cat([ta, tb, tc], dim))
    assert_same(ft.cat((a, b), dim=dim), torch.cat((ta, tb), dim=dim))


def test_cat_default_dim_and_single():
    a, ta = pair((2, 3), "float32", seed=4)
    b, tb = pair((4, 3), "float32", seed=5)
    assert_same(ft.cat([a, b]), torch.cat([ta, tb]))
    assert_same(ft.cat([a]), torch.cat([ta]))
    assert_same(ft.cat([a.T, b.T], 1), torch.cat([ta.T, tb.T], 1))


@pytest.mark.parametrize("dtypes", [("int64", "float32"), ("float32", "float64"), ("bool", "int64"),
                                    ("int32", "int64"), ("bool", "float32"),
                                    ("int64", "float32", "float64")], ids=str)
def test_cat_mixed_dtypes_promote(dtypes):
    pairs = [pair((2, 3), d, seed=6 + i) for i, d in enumerate(dtypes)]
    assert_same(ft.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs]))
    assert_same(ft.cat([p[0] for p in pairs[::-1]], 1), torch.cat([p[1] for p in pairs[::-1]], 1))


def test_cat_empty_tensors():
    a, ta = pair((2, 3), "float32", seed=9)
    e, te = pair((0, 3), "float32", seed=10)
    assert_same(ft.cat([a, e]), torch.cat([ta, te]))
    assert_same(ft.cat([e, a, e]), torch.cat([te, ta, te]))
    assert_same(ft.cat([e, e]), torch.cat([te, te]))
    z, tz = pair((2, 0), "float32", seed=11)
    assert_same(ft.cat([a, z], 1), torch.cat([ta, tz], 1))


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_cat_zero_size_operands(dim):
    z3, tz3 = pair((2, 0, 3), "float32", seed=12)
    assert_same(ft.cat([z3, z3], dim), torch.cat([tz3, tz3], dim))
    assert_same(ft.stack([z3, z3], dim), torch.stack([tz3, tz3], dim))


def test_cat_legacy_1d_empty_is_skipped():
    # torch skips 1-D tensors of shape (0,) whatever the other operands' shapes
    a, ta = pair((2, 3), "float32", seed=13)
    e, te = pair((0,), "float32", seed=14)
    assert_same(ft.cat([a, e]), torch.cat([ta, te]))
    assert_same(ft.cat([e, a], 1), torch.cat([te, ta], 1))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
@pytest.mark.parametrize("dtype", ALL)
def test_stack(dtype, dim, layout):
    ps = [pair((3, 4), dtype, layout if i % 2 else "contiguous", seed=15 + i) for i in range(3)]
    assert_same(ft.stack([p[0] for p in ps], dim), torch.stack([p[1] for p in ps], dim))
    assert_same(ft.stack(tuple(p[0] for p in ps), dim=dim), torch.stack(tuple(p[1] for p in ps), dim=dim))


def test_stack_scalars_empty_and_promotion():
    a, ta = to_ft(torch.tensor(1.5)), torch.tensor(1.5)
    b, tb = to_ft(torch.tensor(2.5)), torch.tensor(2.5)
    assert_same(ft.stack([a, b]), torch.stack([ta, tb]))
    i, ti = pair((2, 3), "int64", seed=19)
    f, tf = pair((2, 3), "float32", seed=20)
    assert_same(ft.stack([i, f]), torch.stack([ti, tf]))


# *** gather / take_along_dim ***

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dim", [0, 1, 2, -1])
@pytest.mark.parametrize("dtype", ALL)
def test_gather(dtype, dim, layout):
    a, ta = pair((3, 4, 5), dtype, layout, seed=21)
    ishape = [3, 4, 5]
    ishape[dim] = 6  # longer than the input along dim: indices may repeat
    i, ti = index_pair(tuple(ishape), (3, 4, 5)[dim], seed=22)
    assert_same(a.gather(dim, i), ta.gather(dim, ti))
    assert_same(ft.gather(a, dim, i), torch.gather(ta, dim, ti))
    # an index smaller than the input in the other dims
    small = [2, 3, 2]
    small[dim] = 2
    i2, ti2 = index_pair(tuple(small), (3, 4, 5)[dim], seed=23)
    assert_same(a.gather(dim, i2), ta.gather(dim, ti2))


def test_gather_non_contiguous_index_and_negative_dim():
    a, ta = pair((4, 6), "float32", seed=24)
    i, ti = index_pair((6, 4), 6, seed=25)
    assert_same(a.gather(-1, i.T), ta.gather(-1, ti.T))
    assert_same(a.gather(1, i[::2].T[:, :3]), ta.gather(1, ti[::2].T[:, :3]))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS + ["int64"])
def test_take_along_dim(dtype, layout):
    a, ta = pair((3, 5), dtype, layout, seed=26)
    i, ti = index_pair((3, 2), 5, seed=27)
    assert_same(a.take_along_dim(i, dim=1), ta.take_along_dim(ti, dim=1))
    assert_same(ft.take_along_dim(a, i, 1), torch.take_along_dim(ta, ti, 1))
    j, tj = index_pair((4, 5), 3, seed=28)
    assert_same(a.take_along_dim(j, dim=0), ta.take_along_dim(tj, dim=0))
    # broadcasting of index and input in the other dims
    k, tk = index_pair((1, 4), 5, seed=29)
    assert_same(a.take_along_dim(k, dim=-1), ta.take_along_dim(tk, dim=-1))
    # with argsort / argmax results, the usual use
    assert_same(a.take_along_dim(a.argsort(dim=1), dim=1), ta.take_along_dim(ta.argsort(dim=1), dim=1))
    assert_same(a.take_along_dim(a.argmax(dim=0, keepdim=True), dim=0),
                ta.take_along_dim(ta.argmax(dim=0, keepdim=True), dim=0))


# *** scatter family ***

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("dtype", FLOATS + ["int64"])
def test_scatter_src(dtype, dim, layout):
    a, ta = pair((4, 5), dtype, layout, seed=31)
    ishape = [2, 3]
    i, ti = perm_index_pair(ishape, dim, (4, 5)[dim], seed=32)
    src, tsrc = pair((3, 4), dtype, seed=33)  # src may be larger than index
    assert_same(a.scatter(dim, i, src), ta.scatter(dim, ti, tsrc))
    assert_same(ft.scatter(a, dim, i, src), torch.scatter(ta, dim, ti, tsrc))
    # scatter is out of place
    assert_same(a, ta)
    r = a.scatter_(dim, i, src)
    ta.scatter_(dim, ti, tsrc)
    assert r is a
    assert_same(a, ta)


@pytest.mark.parametrize("dim", [0, 1])
@pytest.mark.parametrize("dtype", FLOATS + ["int64", "bool"])
def test_scatter_value(dtype, dim):
    a, ta = pair((4, 5), dtype, "transposed", seed=34)
    i, ti = index_pair((3, 2), (4, 5)[dim], seed=35)  # duplicates are fine for a value
    v = True if dtype == "bool" else 7
    assert_same(a.scatter(dim, i, v), ta.scatter(dim, ti, v))
    assert_same(a.scatter(dim, i, value=v), ta.scatter(dim, ti, value=v))
    a.scatter_(dim, i, v)
    ta.scatter_(dim, ti, v)
    assert_same(a, ta)
    if dtype in FLOATS:
        a.scatter_(dim, i, -2.5)
        ta.scatter_(dim, ti, -2.5)
        assert_same(a, ta)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("dtype", FLOATS + ["int64"])
def test_scatter_add(dtype, dim, layout):
    a, ta = pair((4, 5), dtype, layout, seed=36)
    # many duplicate targets: the values accumulate
    i, ti = index_pair((6, 5) if dim == 0 else (4, 9), (4, 5)[dim], seed=37)
    src, tsrc = pair((6, 9), dtype, seed=38)  # src may be larger than index
    assert_same(a.scatter_add(dim, i, src), ta.scatter_add(dim, ti, tsrc))
    assert_same(ft.scatter_add(a, dim, i, src), torch.scatter_add(ta, dim, ti, tsrc))
    assert_same(a, ta)
    r = a.scatter_add_(dim, i, src)
    ta.scatter_add_(dim, ti, tsrc)
    assert r is a
    assert_same(a, ta)


def test_scatter_into_view_updates_base():
    tbase = torch.zeros(5, 6)
    base = to_ft(tbase)
    i, ti = index_pair((2, 3), 3, seed=39)
    src, tsrc = pair((2, 3), "float32", seed=40)
    base[1:, ::2].scatter_add_(0, i, src)
    tbase[1:, ::2].scatter_add_(0, ti, tsrc)
    assert_same(base, tbase)
    base.T[2:5].scatter_(1, ft.tensor([[0], [4], [2]]), 9.0)
    tbase.T[2:5].scatter_(1, torch.tensor([[0], [4], [2]]), 9.0)
    assert_same(base, tbase)


def test_take_along_dim_without_dim():
    a, ta = pair((3, 5), "float32", "contiguous", seed=26)
    f, tf = index_pair((7,), 15, seed=30)
    # indices into the flattened tensor
    assert_same(a.take_along_dim(f), ta.take_along_dim(tf))
    assert_same(ft.take_along_dim(a, f), torch.take_along_dim(ta, tf))


def test_scatter_zero_size_index():
    a, ta = pair((3, 4), "float32", seed=41)
    i, ti = index_pair((0, 4), 3, seed=42)
    s, ts = pair((0, 4), "float32", seed=43)
    assert_same(a.scatter(0, i, s), ta.scatter(0, ti, ts))
    assert_same(a.scatter_add(0, i, s), ta.scatter_add(0, ti, ts))


# *** index_select ***

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
@pytest.mark.parametrize("dtype", ALL)
def test_index_select(dtype, dim, layout):
    a, ta = pair((3, 4, 5), dtype, layout, seed=44)
    i, ti = index_pair((7,), (3, 4, 5)[dim], seed=45)  # duplicates and any order
    assert_same(a.index_select(dim, i), ta.index_select(dim, ti))
    assert_same(ft.index_select(a, dim, i), torch.index_select(ta, dim, ti))
    e, te = index_pair((0,), 1, seed=46)
    assert_same(a.index_select(dim, e), ta.index_select(dim, te))


# *** topk / sort / argsort ***

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("dtype", FLOATS + ["int64"])
def test_topk(dtype, largest, layout):
    # distinct values (a permutation) so the indices are unique
    tbase = torch.randperm(60, generator=torch.Generator().manual_seed(48)).reshape(4, 15)
    tbase = tbase.to(DTYPES[dtype][1]) - 30
    ta = make_layout(tbase, layout)
    a = make_layout(to_ft(tbase), layout, ft)
    for k, dim in [(3, 1), (1, -1), (15, 1), (2, 0), (4, 0), (0, 1)]:
        r = a.topk(k, dim=dim, largest=largest)
        tr = ta.topk(k, dim=dim, largest=largest)
        assert_same(r.values, tr.values)
        assert_same(r.indices, tr.indices)
        values, indices = r
        assert_same(values, tr[0])
        assert_same(indices, tr[1])
    r = a.topk(3)
    tr = ta.topk(3)
    assert_same(r.values, tr.values)
    assert_same(r.indices, tr.indices)
    r = ft.topk(a, 2, 0, largest)
    tr = torch.topk(ta, 2, 0, largest)
    assert_same(r.indices, tr.indices)


def test_topk_nan():
    ta = torch.tensor([1.0, float("nan"), 3.0, 2.0])
    a = to_ft(ta)
    # torch treats NaN as larger than every number
    assert_same(a.topk(2).values, ta.topk(2).values)
    assert_same(a.topk(2).indices, ta.topk(2).indices)
    assert_same(a.topk(2, largest=False).indices, ta.topk(2, largest=False).indices)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dtype", FLOATS + ["int64"])
def test_sort_argsort(dtype, descending, layout):
    tbase = torch.randperm(60, generator=torch.Generator().manual_seed(49)).reshape(3, 4, 5)
    tbase = tbase.to(DTYPES[dtype][1]) - 30
    ta = make_layout(tbase, layout)
    a = make_layout(to_ft(tbase), layout, ft)
    for dim in [0, 1, 2, -1]:
        r = a.sort(dim=dim, descending=descending)
        tr = ta.sort(dim=dim, descending=descending)
        assert_same(r.values, tr.values)
        assert_same(r.indices, tr.indices)
        values, indices = r
        assert_same(values, tr[0])
        assert_same(indices, tr[1])
        assert_same(a.argsort(dim=dim, descending=descending), ta.argsort(dim=dim, descending=descending))
    assert_same(a.sort().values, ta.sort().values)
    assert_same(a.sort(descending=descending).indices, ta.sort(descending=descending).indices)
    assert_same(ft.sort(a, 1, descending).values, torch.sort(ta, 1, descending).values)
    assert_same(ft.argsort(a, 0, descending), torch.argsort(ta, 0, descending))
    assert_same(a.argsort(), ta.argsort())


@pytest.mark.parametrize("descending", [False, True])
def test_sort_stable_with_ties(descending):
    ta = torch.tensor([[3, 1, 2, 1, 3, 0, 1], [0, 0, 0, 0, 0, 0, 0]])
    a = to_ft(ta)
    r = a.sort(dim=1, descending=descending, stable=True)
    tr = ta.sort(dim=1, descending=descending, stable=True)
    assert_same(r.values, tr.values)
    assert_same(r.indices, tr.indices)
    assert_same(a.argsort(dim=1, descending=descending, stable=True),
                ta.argsort(dim=1, descending=descending, stable=True))
    # without stable=True only the values are specified
    assert_same(a.sort(dim=1, descending=descending).values, ta.sort(dim=1, descending=descending).values)


def test_sort_nan_last():
    ta = torch.tensor([2.0, float("nan"), -1.0, float("inf"), float("-inf"), 0.0])
    a = to_ft(ta)
    assert_same(a.sort().values, ta.sort().values)
    assert_same(a.sort().indices, ta.sort().indices)
    assert_same(a.sort(descending=True).values, ta.sort(descending=True).values)
    assert_same(a.sort(descending=True).indices, ta.sort(descending=True).indices)


def test_sort_bool_and_empty():
    b, tb = pair((9,), "bool", seed=50)
    assert_same(b.sort(stable=True).values, tb.sort(stable=True).values)
    assert_same(b.sort(stable=True).indices, tb.sort(stable=True).indices)
    e, te = pair((2, 0), "float32", seed=51)
    assert_same(e.sort(dim=1).values, te.sort(dim=1).values)
    assert_same(e.sort(dim=1).indices, te.sort(dim=1).indices)
    assert_same(e.argsort(dim=0), te.argsort(dim=0))


# *** multinomial (shape and dtype only) ***

def test_multinomial_shape_dtype():
    p = ft.tensor([0.1, 0.2, 0.3, 0.4])
    tp = torch.tensor([0.1, 0.2, 0.3, 0.4])
    for n, repl in [(1, False), (3, False), (4, False), (10, True)]:
        ours = ft.multinomial(p, n, replacement=repl)
        theirs = torch.multinomial(tp, n, replacement=repl)
        assert tuple(ours.shape) == tuple(theirs.shape)
        assert ours.dtype == ft.int64 and theirs.dtype == torch.int64
        assert ((ours >= 0) & (ours < 4)).all().item()
        if not repl:
            assert len(set(ours.tolist())) == n, "without replacement the samples are distinct"
    p2 = ft.ones(3, 5)
    tp2 = torch.ones(3, 5)
    ours, theirs = p2.multinomial(2), tp2.multinomial(2)
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert ours.dtype == ft.int64
    ours, theirs = p2.multinomial(7, replacement=True), tp2.multinomial(7, replacement=True)
    assert tuple(ours.shape) == tuple(theirs.shape)


# *** nonzero / masked_select ***

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", ALL)
def test_nonzero(dtype, layout):
    a, ta = pair((4, 5), dtype, layout, seed=52, low=-1, high=1)
    if dtype in FLOATS:
        a, ta = a.round(), ta.round()
    assert_same(a.nonzero(), ta.nonzero())
    assert_same(ft.nonzero(a), torch.nonzero(ta))
    v, tv = pair((7,), dtype, layout, seed=53, low=-1, high=1)
    assert_same(v.nonzero(), tv.nonzero())
    t3, tt3 = pair((2, 3, 4), dtype, layout, seed=54, low=-1, high=1)
    assert_same(t3.nonzero(), tt3.nonzero())


def test_nonzero_as_tuple():
    a, ta = pair((4, 5), "int64", "transposed", seed=55, low=-1, high=1)
    assert_same(a.nonzero(as_tuple=True), ta.nonzero(as_tuple=True))
    assert isinstance(a.nonzero(as_tuple=True), tuple)
    assert_same(ft.nonzero(a, as_tuple=True), torch.nonzero(ta, as_tuple=True))


def test_nonzero_edge_cases():
    for tt in [torch.zeros(3, 4), torch.zeros(0, 3), torch.tensor(5.0), torch.tensor(0.0),
               torch.tensor([float("nan"), 0.0, -0.0])]:
        assert_same(to_ft(tt).nonzero(), tt.nonzero())


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", ALL)
def test_masked_select(dtype, layout):
    a, ta = pair((4, 5), dtype, layout, seed=56)
    m, tm = pair((4, 5), "bool", layout, seed=57)
    assert_same(a.masked_select(m), ta.masked_select(tm))
    assert_same(ft.masked_select(a, m), torch.masked_select(ta, tm))
    mb, tmb = pair((5,), "bool", seed=58)
    assert_same(a.masked_select(mb), ta.masked_select(tmb))


def test_masked_select_empty():
    e, te = pair((0, 5), "float32", seed=60)
    mb, tmb = pair((5,), "bool", seed=58)
    assert_same(e.masked_select(mb), te.masked_select(tmb))
    me, tme = pair((0, 5), "bool", seed=61)
    assert_same(e.masked_select(me), te.masked_select(tme))


def test_masked_select_mask_broadcasts_input():
    # torch broadcasts the input and the mask against each other
    col, tcol = pair((4, 1), "float32", seed=59)
    m, tm = pair((4, 5), "bool", seed=57)
    assert_same(col.masked_select(m), tcol.masked_select(tm))
    assert_same(ft.masked_select(col, m), torch.masked_select(tcol, tm))


def test_sort_zero_dim():
    tz = torch.tensor(3.0)
    z = to_ft(tz)
    assert_same(z.sort().values, tz.sort().values)
    assert_same(z.sort().indices, tz.sort().indices)
    assert_same(z.argsort(), tz.argsort())
    assert_same(z.topk(1).values, tz.topk(1).values)


# *** repeat / movedim ***

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", ALL)
def test_repeat(dtype, layout):
    a, ta = pair((2, 3), dtype, layout, seed=61)
    for reps in [(1, 1), (2, 1), (1, 3), (2, 3), (2, 1, 1), (3, 2, 2), (0, 2), (2, 0, 1)]:
        assert_same(a.repeat(*reps), ta.repeat(*reps))
        assert_same(a.repeat(reps), ta.repeat(reps))
    v, tv = pair((3,), dtype, layout, seed=62)
    assert_same(v.repeat(4), tv.repeat(4))
    assert_same(v.repeat(2, 2), tv.repeat(2, 2))
    assert_same(v.repeat([2, 1, 2]), tv.repeat([2, 1, 2]))
    z, tz = to_ft(torch.tensor(1.5)), torch.tensor(1.5)
    assert_same(z.repeat(3), tz.repeat(3))
    assert_same(z.repeat(()), tz.repeat(()))
    e, te = pair((2, 0), dtype, seed=63)
    assert_same(e.repeat(3, 2), te.repeat(3, 2))


def test_repeat_result_is_independent_copy():
    a, ta = pair((2, 3), "float32", seed=64)
    r, tr = a.repeat(2, 1), ta.repeat(2, 1)
    r[0, 0] = 100.0
    tr[0, 0] = 100.0
    assert_same(r, tr)
    assert_same(a, ta)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_movedim(layout):
    a, ta = pair((2, 3, 4, 5), "float32", layout, seed=65)
    for src, dst in [(0, 3), (3, 0), (1, -1), (-1, 1), (0, 0), ((0, 1), (2, 3)), ((0, 3), (1, 2)),
                     ((-1, -2), (0, 1)), ((1, 2, 3), (0, 1, 2)), ([0, 2], [3, 1])]:
        assert_same(a.movedim(src, dst), ta.movedim(src, dst))
        assert_same(ft.movedim(a, src, dst), torch.movedim(ta, src, dst))
        assert_same(a.moveaxis(src, dst), ta.moveaxis(src, dst))


# *** embedding-style row lookup (advanced indexing with an index tensor) ***

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS + ["int64"])
def test_embedding_row_lookup(dtype, layout):
    w, tw = pair((10, 4), dtype, layout, seed=67)
    i, ti = index_pair((2, 3), 10, seed=68)
    assert_same(w[i], tw[ti])
    j, tj = index_pair((5,), 10, seed=69)
    assert_same(w[j], tw[tj])
    n, tn = index_pair((3, 2), 10, seed=70, low=-10)  # negative indices count from the end
    assert_same(w[n], tw[tn])
    e, te = index_pair((0, 3), 10, seed=71)
    assert_same(w[e], tw[te])
    # non-contiguous index tensor
    assert_same(w[i.T], tw[ti.T])
    # a column lookup with an index tensor in the second position
    c, tc = index_pair((2, 2), 4, seed=72)
    assert_same(w[:, c], tw[:, tc])


def test_movedim_is_view():
    a, ta = pair((2, 3, 4), "float64", seed=66)
    m, tm = a.movedim(0, 2), ta.movedim(0, 2)
    m[0, 0, 1] = 42.0
    tm[0, 0, 1] = 42.0
    assert_same(a, ta)


def test_index_tensor_result_is_a_copy():
    w, tw = pair((5, 3), "float32", seed=73)
    i, ti = index_pair((2, 2), 5, seed=74)
    r, tr = w[i], tw[ti]
    r.fill_(0)
    tr.fill_(0)
    assert_same(w, tw)


# *** errors: ferrotorch raises the same exception type as torch ***

ERRORS = {
    "cat shape mismatch": lambda m: m.cat([m.zeros(2, 3), m.zeros(2, 4)], 0),
    "cat rank mismatch": lambda m: m.cat([m.zeros(2, 3), m.zeros(2, 3, 1)]),
    "cat empty list": lambda m: m.cat([]),
    "cat dim out of range": lambda m: m.cat([m.zeros(2, 3)], 2),
    "cat zero-dim": lambda m: m.cat([m.tensor(1.0), m.tensor(2.0)]),
    "stack size mismatch": lambda m: m.stack([m.zeros(2, 3), m.zeros(3, 2)]),
    "stack empty list": lambda m: m.stack([]),
    "stack dim out of range": lambda m: m.stack([m.zeros(2, 3)], 3),
    "gather index too large": lambda m: m.zeros(2, 3).gather(1, m.tensor([[0, 5]])),
    "gather negative index": lambda m: m.zeros(2, 3).gather(1, m.tensor([[0, -1]])),
    "gather float index": lambda m: m.zeros(2, 3).gather(1, m.tensor([[0.0, 1.0]])),
    "gather index rank": lambda m: m.zeros(2, 3).gather(1, m.tensor([0, 1])),
    "scatter_ index too large": lambda m: m.zeros(3).scatter_(0, m.tensor([5]), m.ones(1)),
    "scatter_add_ index too large": lambda m: m.zeros(3).scatter_add_(0, m.tensor([3]), m.ones(1)),
    "scatter_ src dtype": lambda m: m.zeros(3).scatter_(0, m.tensor([1]), m.ones(1, dtype=m.float64)),
    "index_select out of range": lambda m: m.zeros(3, 4).index_select(0, m.tensor([3])),
    "index_select 2-D index": lambda m: m.zeros(3, 4).index_select(0, m.tensor([[0, 1]])),
    "topk k too large": lambda m: m.zeros(3).topk(4),
    "multinomial too many samples": lambda m: m.multinomial(m.ones(3), 4),
    "multinomial negative prob": lambda m: m.multinomial(m.tensor([0.5, -0.1]), 1),
    "repeat too few dims": lambda m: m.zeros(2, 3).repeat(2),
    "movedim repeated source": lambda m: m.zeros(2, 3).movedim((0, 0), (0, 1)),
    "movedim dim out of range": lambda m: m.zeros(2, 3).movedim(2, 0),
    "movedim length mismatch": lambda m: m.zeros(2, 3).movedim((0, 1), (0,)),
    "row lookup out of range": lambda m: m.zeros(4, 3)[m.tensor([[0, 4]])],
    "row lookup negative out of range": lambda m: m.zeros(4, 3)[m.tensor([-5])],
}


# Errors that depend on the values of an index tensor (not its shape or dtype).
INDEX_VALUE_ERRORS = {"gather index too large", "gather negative index", "scatter_ index too large",
                      "scatter_add_ index too large", "index_select out of range",
                      "row lookup out of range", "row lookup negative out of range"}


@pytest.mark.parametrize("case", list(ERRORS))
def test_error_type_matches_torch(case):
    if case in INDEX_VALUE_ERRORS:
        skip_if_cuda_differs("CUDA checks index values in the kernel, a device-side assert that poisons the process")
    f = ERRORS[case]
    with pytest.raises(Exception) as expected:
        f(torch)
    with pytest.raises(expected.type):
        f(ft)
