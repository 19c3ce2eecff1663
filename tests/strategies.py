"""Hypothesis strategies for the property tests, and the builders that turn drawn numpy values
into the same tensor, with the same memory layout, in ferrotorch and in torch."""

import functools
import math

import numpy as np
import torch
from conftest import DTYPES
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# tuples, so that the cached strategies below can take them as arguments
FLOATS = ("float32", "float64")
HALVES = ("float16", "bfloat16")
INTS = ("int64", "int32")
ALL_DTYPES = FLOATS + HALVES + INTS + ("bool",)

# Values where float kernels usually go wrong: signed zeros, infinities, NaN, numbers that
# overflow float32 (1e38 squared) or float64, and subnormals of both widths.
SPECIALS = [0.0, -0.0, math.inf, -math.inf, math.nan, 1e38, -1e38, 1e300, 1e-45, -1e-45, 5e-324]

# Multiples of 1/8: sums and products of a few of them are exact in float32, so reductions and
# matmul results do not depend on the summation order and can be compared tightly.
dyadic = st.integers(-80, 80).map(lambda i: i / 8)
moderate = st.floats(-10, 10, allow_subnormal=False)


def shapes(min_rank=0, max_rank=5, min_side=0):
    """Shapes of rank min_rank..max_rank with sides up to 4 (zero-size dims when min_side=0)."""
    return hnp.array_shapes(min_dims=min_rank, max_dims=max_rank, min_side=min_side, max_side=4)


# Building (and validating) a strategy costs more than drawing from it, and the same shapes come
# up again and again: the strategy builders that take a shape are cached.
@functools.lru_cache(maxsize=None)
def values(shape, dtype, elements=moderate):
    """A numpy array of `shape` for `dtype`; floats come from `elements`, cast to the width of
    `dtype` (so 1e300 becomes inf in float32), half types are carried as float32."""
    if dtype == "bool":
        return hnp.arrays(np.bool_, shape)
    if dtype in INTS:
        return hnp.arrays(np.int64, shape, elements=st.integers(-5, 5)).map(
            lambda a: a.astype(dtype))
    width = np.float64 if dtype == "float64" else np.float32
    return hnp.arrays(np.float64, shape, elements=elements, fill=elements).map(
        lambda a: _cast(a, width))


def _cast(a, width):
    with np.errstate(all="ignore"):
        return a.astype(width)


@functools.lru_cache(maxsize=None)
def with_specials(elements=moderate):
    """`elements` mixed with SPECIALS, about one value in four."""
    return st.one_of(elements, elements, elements, st.sampled_from(SPECIALS))


LAYOUTS = ("contiguous", "transposed", "sliced", "expanded")


def build(M, vals, dtype, layout, requires_grad=False, clone=False):
    """`vals` as a tensor of module M (ferrotorch or torch) with the given memory layout.

    Returns (tensor, leaf): the leaf is the contiguous tensor made from numpy whose .grad the
    tests compare. "transposed" is a reversed-dims permute of a contiguous tensor, "sliced" a
    step-2 slice of the last dim of a wider one, "expanded" broadcasts the first row of `vals`
    along dim 0 (so it holds different values: read them back from the tensor). With clone=True
    the view is taken of ``leaf.clone()``, so that it can be written to.
    """
    rank = vals.ndim
    if layout == "transposed" and rank >= 2:
        base = np.ascontiguousarray(vals.transpose())
    elif layout == "sliced" and rank >= 1:
        base = np.zeros(vals.shape[:-1] + (2 * vals.shape[-1] + 1,), dtype=vals.dtype)
        base[..., 1::2] = vals
    elif layout == "expanded" and rank >= 1:
        base = vals[:1]
    else:
        layout, base = "contiguous", vals
    leaf = M.tensor(base).to(DTYPES[dtype][1 if M is torch else 0])
    if requires_grad:
        leaf.requires_grad_()
    x = leaf.clone() if clone else leaf
    if layout == "transposed":
        x = x.permute(*reversed(range(rank)))
    elif layout == "sliced":
        x = x[..., 1::2]
    elif layout == "expanded":
        x = x.expand(*vals.shape)
    return x, leaf


@functools.lru_cache(maxsize=None)
@st.composite
def tensor_inputs(draw, shape, dtypes=ALL_DTYPES, elements=moderate, layouts=LAYOUTS):
    """(numpy values, dtype name, layout) for one input of `shape`."""
    dtype = draw(st.sampled_from(dtypes))
    return draw(values(shape, dtype, elements)), dtype, draw(st.sampled_from(layouts))


def dim_of(rank):
    """A dim of a tensor of `rank`, negative too, out of range one time in four (a 0-d tensor
    takes dim 0 and -1)."""
    n = max(rank, 1)
    valid = st.integers(-n, n - 1)
    return st.one_of(valid, valid, valid, st.sampled_from([-n - 1, n]))


@functools.lru_cache(maxsize=None)
def dims(rank, tuples=True, none=True):
    """A reduction `dim`: None, one dim or a non-empty tuple of distinct dims (torch itself
    disagrees on what an empty one means: sum reduces all dims, all reduces none)."""
    options = [dim_of(rank)]
    if none:
        options.append(st.none())
    if tuples:
        n = max(rank, 1)
        options.append(st.lists(st.integers(-n, n - 1), min_size=1, max_size=n,
                                unique_by=lambda d: d % n).map(tuple))
    return st.one_of(*options)


@st.composite
def same_numel_shape(draw, shape):
    """A shape with the same number of elements as `shape`, maybe with one -1, rarely a wrong
    one (so that reshape and view must refuse it as torch does)."""
    n = math.prod(shape)
    if n == 0:
        target = draw(st.lists(st.integers(0, 4), max_size=4)) + [0]
    else:
        factors = [p for p in (2, 3) for _ in range(_multiplicity(n, p))]
        factors = draw(st.permutations(factors))
        cuts = sorted(draw(st.lists(st.integers(0, len(factors)), max_size=3)))
        bounds = [0] + cuts + [len(factors)]
        target = [math.prod(factors[a:b]) for a, b in zip(bounds, bounds[1:])]
    target = draw(st.permutations(target))
    if target and draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    if draw(st.integers(0, 9)) == 0:
        target.append(2)
    return tuple(target)


def _multiplicity(n, p):
    count = 0
    while n % p == 0:
        n //= p
        count += 1
    return count


@st.composite
def indices(draw, shape):
    """An index tuple for a tensor of `shape`: ints (sometimes out of range), slices with steps
    (rarely a negative one, which torch refuses), None, at most one Ellipsis, integer arrays or
    nested lists (with shapes broadcastable together) and boolean masks over 0 to 2 dims. Arrays
    are numpy; the tests turn them into each framework's tensors with `as_index`."""
    kinds = ["int", "slice", "slice", "none", "array", "list", "mask"]
    array_shapes = iter(draw(hnp.mutually_broadcastable_shapes(num_shapes=max(len(shape), 1),
                                                               max_dims=2, max_side=3)).input_shapes)
    items, dim, has_ellipsis = [], 0, False
    while dim < len(shape):
        if not has_ellipsis and draw(st.integers(0, 4)) == 0:
            if draw(st.booleans()):
                break  # fewer indices than dims
            items.append(Ellipsis)
            has_ellipsis = True
            dim = draw(st.integers(dim, len(shape)))  # skip the dims the Ellipsis stands for
            continue
        kind = draw(st.sampled_from(kinds))
        size = shape[dim]
        if kind == "none":
            items.append(None)
            continue
        if kind == "int":
            items.append(draw(st.integers(-size - 1, size)))
        elif kind == "slice":
            bound = st.none() | st.integers(-size - 2, size + 2)
            step = st.sampled_from([None, 1, 2, 3] + [-1] * (draw(st.integers(0, 9)) == 0))
            items.append(slice(draw(bound), draw(bound), draw(step)))
        elif kind in ("array", "list"):
            arr = draw(hnp.arrays(np.int64, next(array_shapes),
                                  elements=st.integers(-size, max(size - 1, 0))))
            items.append(arr.tolist() if kind == "list" and arr.ndim else arr)
        else:
            span = draw(st.integers(0, min(2, len(shape) - dim)))
            items.append(draw(hnp.arrays(np.bool_, shape[dim:dim + span])))
            dim += span
            continue
        dim += 1
    if not has_ellipsis and draw(st.integers(0, 4)) == 0:
        items.append(None)
    return tuple(items)


def as_index(M, index):
    """An index tuple from `indices` with its numpy arrays made into tensors of module M."""
    return tuple(M.tensor(i) if isinstance(i, np.ndarray) else i for i in index)
