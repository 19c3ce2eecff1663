"""Views, shape ops and indexing, compared with torch: values, shapes, strides, storage offsets,
whether the result shares the input's memory, and writes through views."""

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import DTYPES, LAYOUTS, assert_same, cuda_differs, pair, skip_if_cuda_differs, to_ft

torch.set_num_threads(1)  # tiny tensors: torch's thread pool only adds latency

FT = {k: v[0] for k, v in DTYPES.items()}
TH = {k: v[1] for k, v in DTYPES.items()}
VDTYPES = ["float32", "float64", "int64", "bool"]


def lib(x):
    return torch if isinstance(x, torch.Tensor) else ft


def ptr(x):
    return x._storage_ptr() if isinstance(x, ft.Tensor) else x.untyped_storage().data_ptr()


def check_layout(ours, theirs, base, tbase):
    """ours equals theirs in values, strides, offset, contiguity and memory sharing with the base."""
    if isinstance(theirs, (tuple, list)):
        assert isinstance(ours, (tuple, list)) and len(ours) == len(theirs)
        for o, t in zip(ours, theirs):
            check_layout(o, t, base, tbase)
        return
    assert_same(ours, theirs)
    assert ours.stride() == theirs.stride(), f"stride {ours.stride()} != torch {theirs.stride()}"
    assert ours.storage_offset() == theirs.storage_offset()
    assert ours.is_contiguous() == theirs.is_contiguous()
    assert (ptr(ours) == ptr(base)) == (ptr(theirs) == ptr(tbase)), "memory sharing differs from torch"


def raises_like(ours, theirs):
    """theirs() (torch) raises; ours() (ferrotorch) must raise the same exception type."""
    with pytest.raises(Exception) as e:
        theirs()
    with pytest.raises(e.type):
        ours()


def run_both(fn, a, ta):
    """fn(ta); if torch raises, ferrotorch must raise the same type, else returns both results."""
    try:
        theirs = fn(ta)
    except Exception as e:  # noqa: BLE001
        with pytest.raises(type(e)):
            fn(a)
        return None, None
    return fn(a), theirs


# *** shape/view ops ***

OPS_234 = [
    lambda x: x.view(6, 4), lambda x: x.view(-1), lambda x: x.view(2, 12), lambda x: x.view(2, 3, 2, 2),
    lambda x: x.view(1, 2, 3, 4, 1), lambda x: x.view((4, 6)), lambda x: x.view_as(lib(x).empty(3, 8)),
    lambda x: x.reshape_as(lib(x).empty(4, 6)),
    lambda x: x.reshape(6, 4), lambda x: x.reshape(-1), lambda x: x.reshape(4, -1), lambda x: x.reshape(2, 3, 2, 2),
    lambda x: x.reshape(24, 1), lambda x: x.reshape((2, 12)), lambda x: x.reshape(2, 3, 4),
    lambda x: x.transpose(0, 1), lambda x: x.transpose(-1, 0), lambda x: x.transpose(1, 1), lambda x: x.swapaxes(0, 2),
    lambda x: x.permute(2, 0, 1), lambda x: x.permute((1, 2, 0)), lambda x: x.permute(-1, 0, 1),
    lambda x: x.mT, lambda x: x[0].T, lambda x: x[:, 1].t(), lambda x: x[0, 0].t(),
    lambda x: x.unsqueeze(0), lambda x: x.unsqueeze(-1), lambda x: x.unsqueeze(2), lambda x: x.unsqueeze(-2),
    lambda x: x.flatten(), lambda x: x.flatten(1), lambda x: x.flatten(0, 1), lambda x: x.flatten(-2, -1),
    lambda x: x.flatten(1, 1), lambda x: x[1, 2, 3].flatten(),
    lambda x: x.unflatten(1, (3, 1)), lambda x: x.unflatten(-1, (2, -1)), lambda x: x.unflatten(0, (1, 2, 1)),
    lambda x: x.narrow(1, 1, 2), lambda x: x.narrow(-1, 0, 2), lambda x: x.narrow(0, 1, 1), lambda x: x.narrow(2, 4, 0),
    lambda x: x.select(1, 2), lambda x: x.select(-1, -1),
    lambda x: x.unbind(0), lambda x: x.unbind(1), lambda x: x.unbind(-1),
    lambda x: x.split(2, dim=-1), lambda x: x.split([1, 2], dim=1), lambda x: x.split(3), lambda x: x.split([1, 3], -1),
    lambda x: x.split(3, 2), lambda x: x.split(1),
    lambda x: x.chunk(3, dim=1), lambda x: x.chunk(3, dim=2), lambda x: x.chunk(2, 1), lambda x: x.chunk(5, -1),
    lambda x: x.chunk(1),
    lambda x: x.contiguous(), lambda x: x.clone(), lambda x: x.movedim(0, -1), lambda x: x.movedim((0, 1), (2, 0)),
    lambda x: x.expand(2, 3, 4), lambda x: x.expand(-1, -1, -1), lambda x: x.expand(5, 2, 3, 4),
    lambda x: x.expand(1, -1, 3, -1), lambda x: x.broadcast_to((2, 2, 3, 4)),
    lambda x: x.view(6, 4).T.reshape(2, 12), lambda x: x.transpose(0, 1).reshape(3, 8), lambda x: x[:, ::2].reshape(-1),
    lambda x: x[:, ::2].view(2, 2, 2, 2), lambda x: x.transpose(1, 2).flatten(1), lambda x: x.permute(2, 0, 1).contiguous(),
    lambda x: x.unsqueeze(1).squeeze(1),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("i", range(len(OPS_234)))
def test_view_ops(i, layout):
    for dtype in VDTYPES:
        a, ta = pair((2, 3, 4), dtype, layout, seed=i)
        ours, theirs = run_both(OPS_234[i], a, ta)
        if theirs is not None:
            check_layout(ours, theirs, a, ta)


OPS_SQUEEZE = [
    lambda x: x.squeeze(), lambda x: x.squeeze(1), lambda x: x.squeeze(0), lambda x: x.squeeze(-1),
    lambda x: x.squeeze((1, 3)), lambda x: x.squeeze((0, 1)), lambda x: x.squeeze(dim=3), lambda x: x.squeeze(()),
    lambda x: x.expand(2, 5, 4, 3), lambda x: x.expand(3, 2, -1, 4, -1), lambda x: x.flatten(),
    lambda x: x.view(8), lambda x: x.reshape(2, 4), lambda x: x.view(2, 1, 4), lambda x: x.transpose(1, 3),
    lambda x: x.unbind(1), lambda x: x.chunk(2, 2), lambda x: x.unsqueeze(4), lambda x: x.mT,
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("i", range(len(OPS_SQUEEZE)))
def test_view_ops_size1_dims(i, layout):
    for dtype in ["float32", "int64"]:
        a, ta = pair((2, 1, 4, 1), dtype, layout, seed=i)
        ours, theirs = run_both(OPS_SQUEEZE[i], a, ta)
        if theirs is not None:
            check_layout(ours, theirs, a, ta)


OPS_0D = [lambda x: x.view(1), lambda x: x.reshape(1, 1), lambda x: x.unsqueeze(0), lambda x: x.squeeze(),
          lambda x: x.flatten(), lambda x: x.expand(3, 2), lambda x: x.t(), lambda x: x.clone(),
          lambda x: x.view(-1), lambda x: x.squeeze(0), lambda x: x.unsqueeze(-1)]


@pytest.mark.parametrize("i", range(len(OPS_0D)))
def test_view_ops_rank0(i):
    a, ta = ft.tensor(2.5), torch.tensor(2.5)
    ours, theirs = run_both(OPS_0D[i], a, ta)
    if theirs is not None:
        check_layout(ours, theirs, a, ta)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_expand_as(layout):
    a, ta = pair((3, 1), "float32", layout)
    check_layout(a.expand_as(ft.zeros(2, 3, 4)), ta.expand_as(torch.zeros(2, 3, 4)), a, ta)


BAD_OPS = [
    lambda x: x.view(5, 5), lambda x: x.reshape(5, -1), lambda x: x.view(-1, -1), lambda x: x.transpose(0, 3),
    lambda x: x.permute(0, 1), lambda x: x.permute(0, 0, 1), lambda x: x.expand(3, 3, 4), lambda x: x.expand(3, 4),
    lambda x: x.narrow(1, 2, 2), lambda x: x.unsqueeze(4), lambda x: x.squeeze(3), lambda x: x.flatten(2, 0),
    lambda x: x.unflatten(1, (2, 2)), lambda x: x.split([1, 1], 1), lambda x: x.chunk(0), lambda x: x.select(1, 3),
    lambda x: x.mT[0].T.T[5],
]


@pytest.mark.parametrize("i", range(len(BAD_OPS)))
def test_bad_view_ops_raise(i):
    a, ta = pair((2, 3, 4), "float32")
    raises_like(lambda: BAD_OPS[i](a), lambda: BAD_OPS[i](ta))


def test_view_of_noncontiguous_raises():
    a, ta = pair((2, 3, 4), "float32", "transposed")
    raises_like(lambda: a.view(-1), lambda: ta.view(-1))
    raises_like(lambda: a.view(6, 4), lambda: ta.view(6, 4))


WRITE_VIEWS = [
    lambda x: x.view(2, 3, 2, 2), lambda x: x.reshape(-1), lambda x: x.transpose(0, 2), lambda x: x.permute(1, 2, 0),
    lambda x: x[1], lambda x: x[:, 1:3], lambda x: x[..., ::2], lambda x: x.narrow(2, 1, 2), lambda x: x.select(1, 0),
    lambda x: x.unsqueeze(1), lambda x: x.flatten(), lambda x: x.unbind(1)[2], lambda x: x.split(2, -1)[1],
    lambda x: x.chunk(3, 1)[1], lambda x: x.mT, lambda x: x.unflatten(2, (2, 2)), lambda x: x[None, :, ::2],
    lambda x: x.contiguous(), lambda x: x.detach(), lambda x: x[0].t(),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("i", range(len(WRITE_VIEWS)))
def test_write_through_view(i, layout):
    a, ta = pair((2, 3, 4), "float32", layout, seed=i)
    v, tv = WRITE_VIEWS[i](a), WRITE_VIEWS[i](ta)
    v.zero_(), tv.zero_()
    assert_same(a, ta)
    v, tv = WRITE_VIEWS[i](a), WRITE_VIEWS[i](ta)
    v[0] = 5.0
    tv[0] = 5.0
    assert_same(a, ta)
    v.add_(1), tv.add_(1)
    assert_same(a, ta)
    assert_same(v, tv)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_write_to_base_visible_in_view(layout):
    a, ta = pair((2, 3, 4), "float64", layout)
    v, tv = a.transpose(0, 1)[1:], ta.transpose(0, 1)[1:]
    a[1, 2] = -7.0
    ta[1, 2] = -7.0
    a.mul_(2), ta.mul_(2)
    assert_same(v, tv)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_clone_is_independent(layout):
    a, ta = pair((3, 4), "float32", layout)
    c, tc = a.clone(), ta.clone()
    assert ptr(c) != ptr(a)
    c.zero_(), tc.zero_()
    assert_same(a, ta)
    assert_same(c, tc)


def test_reshape_copy_is_independent():
    a, ta = pair((3, 4), "float32", "transposed")
    r, tr = a.reshape(-1), ta.reshape(-1)
    assert (ptr(r) == ptr(a)) == (ptr(tr) == ptr(ta)) == False  # noqa: E712
    r.zero_(), tr.zero_()
    assert_same(a, ta)


# *** basic indexing ***

BASIC = [
    1, -1, 3, -4, (0, 2), (-1, -2, -3), (3, 4, 5), slice(None), slice(1, 3), slice(None, None, 2), slice(None, None, 3),
    slice(-3, None), slice(1, -1, 2), slice(5, 10), slice(3, 1), slice(-10, 10), slice(None, -5),
    None, (None, 1), (..., 1), (1, ...), (..., None), (None, ..., None), Ellipsis, (), (0, 0, 0), (..., 0, 0, 0),
    (1, slice(None), 2), (slice(None, None, 2), None, -1), (..., slice(1, 3), None), (1, None, ..., slice(None, None, 2)),
    (slice(1, None, 2), slice(None, None, 3), slice(None, None, 4)), (slice(None), slice(None), slice(1, 2)),
    (None, None, 1, None), (slice(0, 0),), (0, slice(4, 1, 1)), (slice(None), -1, slice(None, None, 5)),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("idx", BASIC, ids=repr)
def test_basic_indexing(idx, layout):
    for dtype in VDTYPES:
        a, ta = pair((4, 5, 6), dtype, layout)
        check_layout(a[idx], ta[idx], a, ta)


def test_index_0d_tensor_with_ellipsis_none():
    a, ta = ft.tensor(3.0), torch.tensor(3.0)
    for idx in [(), ..., None, (None, ...), (..., None, None)]:
        check_layout(a[idx], ta[idx], a, ta)


def test_index_1d_gives_0d():
    a, ta = pair((5,), "float32", "sliced")
    check_layout(a[2], ta[2], a, ta)
    check_layout(a[-1], ta[-1], a, ta)


@pytest.mark.parametrize("idx", [4, -5, (0, 5), (0, 0, 6), (1, 2, 3, 4), (0, -6), (slice(None), 9), (..., 0, 0, 0, 0)],
                         ids=repr)
def test_out_of_range_index_raises(idx):
    a, ta = pair((4, 5, 6), "float32")
    raises_like(lambda: a[idx], lambda: ta[idx])


@pytest.mark.parametrize("idx", [slice(None, None, -1), (slice(None), slice(3, 0, -1)), 1.5, (0, 1.0),
                                 (slice(None), [0, 5])], ids=repr)
def test_bad_index_raises(idx):
    if isinstance(idx, tuple) and isinstance(idx[-1], list):
        skip_if_cuda_differs("CUDA checks index tensors' bounds in the kernel, a device-side assert that poisons the process")
    a, ta = pair((4, 5, 6), "float32")
    raises_like(lambda: a[idx], lambda: ta[idx])


def test_bad_mask_raises():
    a, ta = pair((4, 5, 6), "float32")
    raises_like(lambda: a[ft.tensor([True, False])], lambda: ta[torch.tensor([True, False])])
    raises_like(lambda: a[ft.tensor(M2[:, :4])], lambda: ta[torch.tensor(M2[:, :4])])


@cuda_differs("CUDA checks index tensors' bounds in the kernel, a device-side assert that poisons the process")
def test_out_of_range_raises_indexerror():
    a, ta = pair((4, 5, 6), "float32")
    with pytest.raises(IndexError):
        ta[4]
    with pytest.raises(IndexError):
        a[4]
    with pytest.raises(IndexError):
        a[[0, 4]]
    with pytest.raises(IndexError):
        a[:, ft.tensor([-6])]
    with pytest.raises(IndexError):
        a[4] = 1.0
    with pytest.raises(IndexError):
        a[[7]] = 1.0


# *** advanced indexing ***

M3 = np.arange(120).reshape(4, 5, 6) % 3 == 0
M2 = np.arange(20).reshape(4, 5) % 3 != 1
ADVANCED = {
    "list": lambda m: [0, 2],
    "list_neg": lambda m: [-1, 0, -1],
    "tuple_list": lambda m: ([0, 2],),
    "tensor": lambda m: m.tensor([0, -1, 2]),
    "tensor_2d": lambda m: m.tensor([[0, 1], [2, 3]]),
    "tensor_0d": lambda m: m.tensor(1),
    "tensor_empty": lambda m: m.tensor([], dtype=m.int64),
    "slice_list": lambda m: (slice(None), [0, 2, 4]),
    "slice_tensor": lambda m: (slice(None), m.tensor([4, 0])),
    "two_adjacent_first": lambda m: ([0, 1], [1, 2]),
    "two_adjacent_after_slice": lambda m: (slice(None), [0, 1], [1, 2]),
    "two_nonadjacent": lambda m: ([0, 1], slice(None), [1, 2]),
    "three": lambda m: ([0, 1, 3], [1, 2, 4], [5, 0, 0]),
    "broadcast": lambda m: ([[0], [1]], [0, 2, 3]),
    "broadcast_nonadjacent": lambda m: (m.tensor([[0], [1]]), slice(None), m.tensor([0, 2, 3])),
    "broadcast_scalar": lambda m: (m.tensor([[0, 1]]), 2),
    "int_and_list_nonadjacent": lambda m: (1, slice(None), [0, 2]),
    "int_and_list_adjacent": lambda m: (slice(None), 1, [0, 2]),
    "list_and_int_nonadjacent": lambda m: ([0, 2], slice(1, 3), 1),
    "ellipsis_list": lambda m: (..., [0, 1]),
    "none_list": lambda m: (None, [0, 1]),
    "list_none_list": lambda m: ([0, 1], None, [1, 2]),
    "step_slice_list": lambda m: (slice(None, None, 2), [0, 1]),
    "list_step_slice": lambda m: ([3, 1], slice(1, None, 2)),
    "mask_full": lambda m: m.tensor(M3),
    "mask_partial": lambda m: m.tensor(M2),
    "mask_dim0": lambda m: m.tensor([True, False, True, True]),
    "mask_dim1": lambda m: (slice(None), m.tensor([True, False, True, False, True])),
    "mask_list": lambda m: [True, False, True, True],
    "mask_all_false": lambda m: m.tensor([False] * 4),
    "mask_and_int": lambda m: (m.tensor([True, False, True, False]), slice(None), 0),
    "mask_and_list": lambda m: (m.tensor([True, False, True, False]), [1, 3]),
    "mask_after_slice": lambda m: (slice(1, 3), m.tensor(M2[:, 0:5] | True)[0]),
    "mask_2d_trailing": lambda m: (slice(None), m.tensor(M3[0])),
    "ellipsis_mask": lambda m: (..., m.tensor([True, False, False, True, True, False])),
    "int_tensor_int32": lambda m: m.tensor([2, 0], dtype=m.int32),
    "bool_scalar_true": lambda m: True,
    "bool_scalar_false": lambda m: False,
    "none_mask": lambda m: (None, m.tensor([True, False, True, True])),
    "bool_0d_tensor": lambda m: m.tensor(True),
    "numpy_int": lambda m: np.int64(2),
    "numpy_array": lambda m: np.array([0, 3]),
    "numpy_ints_tuple": lambda m: (np.int64(1), slice(None), np.int32(-1)),
    "tensor_then_step": lambda m: (m.tensor([1, 0]), slice(None, None, 2), slice(1, None, 2)),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", list(ADVANCED))
def test_advanced_indexing(name, layout):
    for dtype in VDTYPES:
        a, ta = pair((4, 5, 6), dtype, layout)
        ours, theirs = a[ADVANCED[name](ft)], ta[ADVANCED[name](torch)]
        assert_same(ours, theirs)
        if ptr(theirs) != ptr(ta):  # a copy in torch: a copy here too
            assert ptr(ours) != ptr(a)


# *** __setitem__ ***

def tv(shape, dtype="float32", offset=10):
    """(ferrotorch, torch) value tensors with distinct, exactly representable values."""
    t = (torch.arange(int(np.prod(shape)), dtype=torch.int64) + offset).reshape(shape).to(TH[dtype])
    return to_ft(t), t


SETITEM = {
    "int_scalar": (lambda m: 1, 5),
    "neg_int_float": (lambda m: -1, 2.5),
    "slice_scalar": (lambda m: (slice(None), slice(1, 3)), 3),
    "step_slice": (lambda m: (slice(None, None, 2), slice(None), slice(1, None, 3)), -1),
    "point": (lambda m: (1, 2, 3), 9),
    "ellipsis": (lambda m: ..., 0),
    "none": (lambda m: (None, 0), 4),
    "tensor_exact": (lambda m: (..., 0), (4, 5)),
    "tensor_broadcast_row": (lambda m: 0, (6,)),
    "tensor_broadcast_col": (lambda m: (slice(None), slice(None, None, 2)), (1, 3, 1)),
    "tensor_0d": (lambda m: 1, ()),
    "tensor_f64": (lambda m: 2, ((5, 6), "float64")),
    "tensor_int": (lambda m: (slice(None), 1), ((4, 6), "int64")),
    "tensor_bool": (lambda m: (slice(None), 1), ((6,), "bool")),
    "list": (lambda m: [0, 2], 7),
    "list_tensor": (lambda m: [0, 2], (2, 5, 6)),
    "list_broadcast": (lambda m: [3, 1], (6,)),
    "two_lists_nonadjacent": (lambda m: ([0, 2], slice(None), [1, 3]), (2, 5)),
    "two_lists_adjacent": (lambda m: (slice(None), [0, 2], [1, 3]), (4, 2)),
    "broadcast_lists": (lambda m: (m.tensor([[0], [3]]), m.tensor([1, 2, 4])), (2, 3, 6)),
    "mask_scalar": (lambda m: m.tensor(M3), 0),
    "mask_values": (lambda m: m.tensor(M3), (int(M3.sum()),)),
    "mask_partial_broadcast": (lambda m: m.tensor(M2), (6,)),
    "mask_dim0": (lambda m: m.tensor([True, False, False, True]), (5, 6)),
    "mask_slice": (lambda m: (slice(None), m.tensor([True, False, True, False, True])), 1),
    "empty_index": (lambda m: m.tensor([], dtype=m.int64), 3),
    "empty_slice": (lambda m: slice(2, 2), 3),
    "numpy_index": (lambda m: np.array([1, 3]), -4),
    "bool_0d_tensor": (lambda m: m.tensor(True), 2),
    "tensor_then_step": (lambda m: (m.tensor([1, 0]), slice(None, None, 2)), (2, 3, 6)),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", list(SETITEM))
def test_setitem(name, layout):
    for dtype in VDTYPES:
        a, ta = pair((4, 5, 6), dtype, layout)
        idx, value = SETITEM[name]
        if isinstance(value, tuple):
            shape, vdtype = value if value and isinstance(value[0], tuple) else (value, dtype)
            v, t = tv(shape, vdtype)
        else:
            v = t = value
        a[idx(ft)] = v
        ta[idx(torch)] = t
        assert_same(a, ta)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_setitem_on_views_reaches_base(layout):
    a, ta = pair((4, 5, 6), "float32", layout)
    for view in [lambda x: x[1:3], lambda x: x.transpose(0, 2), lambda x: x[:, ::2], lambda x: x.select(2, 1),
                 lambda x: x.permute(2, 0, 1)[1:]]:
        v, t = view(a), view(ta)
        v[0] = -2.0
        t[0] = -2.0
        v[[0, 1], 1] = 5.0
        t[[0, 1], 1] = 5.0
        v[v > 1] = 0.5
        t[t > 1] = 0.5
        assert_same(a, ta)


def test_setitem_value_shape_mismatch_raises():
    a, ta = pair((4, 5), "float32")
    v, t = tv((3,))
    raises_like(lambda: a.__setitem__(0, v), lambda: ta.__setitem__(0, t))
    v, t = tv((2, 5))
    raises_like(lambda: a.__setitem__([0, 1, 2], v), lambda: ta.__setitem__([0, 1, 2], t))


def test_setitem_numpy_value():
    a, ta = pair((4, 3), "float64")
    a[2:] = np.ones((2, 3), dtype=np.float32)
    ta[2:] = torch.from_numpy(np.ones((2, 3), dtype=np.float32))
    assert_same(a, ta)


def test_setitem_self_overlap():
    a, ta = pair((6,), "float32")
    a[1:] = a[:-1].clone()
    ta[1:] = ta[:-1].clone()
    assert_same(a, ta)


# *** index_put_ ***

INDEX_PUT = {
    "dup_1d": (lambda m: (m.tensor([0, 0, 2, 0]),), (4, 5, 6)),
    "dup_2d": (lambda m: (m.tensor([0, 1, 0]), m.tensor([2, 3, 2])), (3, 6)),
    "dup_3d": (lambda m: (m.tensor([3, 3, 3]), m.tensor([4, 4, 0]), m.tensor([5, 5, 5])), (3,)),
    "broadcast_value": (lambda m: (m.tensor([1, 1]), m.tensor([0, 0])), (6,)),
    "scalar_value": (lambda m: (m.tensor([2, 2, 2]),), ()),
    "neg": (lambda m: (m.tensor([-1, 3]),), (1, 5, 6)),
    "mask": (lambda m: (m.tensor(M2),), (6,)),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
@pytest.mark.parametrize("accumulate", [True, False])
@pytest.mark.parametrize("name", list(INDEX_PUT))
def test_index_put_(name, accumulate, dtype, layout):
    idx, shape = INDEX_PUT[name]
    if not accumulate and name.startswith("dup"):
        shape = ()  # without accumulate duplicates are only well defined for equal values
    a, ta = pair((4, 5, 6), dtype, layout)
    v, t = tv(shape, dtype)
    out, tout = a.index_put_(idx(ft), v, accumulate=accumulate), ta.index_put_(idx(torch), t, accumulate=accumulate)
    assert_same(a, ta)
    assert out is a and tout is ta


@cuda_differs("CUDA checks index tensors' bounds in the kernel, a device-side assert that poisons the process")
def test_index_put_out_of_range_raises():
    a, ta = pair((4, 5), "float32")
    v, t = tv((1,))
    raises_like(lambda: a.index_put_((ft.tensor([4]),), v, accumulate=True),
                lambda: ta.index_put_((torch.tensor([4]),), t, accumulate=True))
    raises_like(lambda: a.index_put_((ft.tensor([-5]),), v), lambda: ta.index_put_((torch.tensor([-5]),), t))
