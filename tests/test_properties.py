"""Property tests: hypothesis draws shapes (rank 0-5, zero-size dims), dtypes, memory layouts and
values (with infinities, NaN, signed zeros and subnormals), and each property runs the same
computation in ferrotorch and in torch: the values and dtypes, every leaf's gradient and, where
torch refuses the input, the exception type must be the same.

Run longer with ``pytest --hypothesis-profile=long tests/test_properties.py``.
"""

import math
import operator

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import DTYPES, TOLERANCE, assert_same, dtype_name
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import (
    ALL_DTYPES,
    FLOATS,
    HALVES,
    INTS,
    LAYOUTS,
    as_index,
    build,
    dim_of,
    dims,
    dyadic,
    indices,
    same_numel_shape,
    shapes,
    tensor_inputs,
    values,
    with_specials,
)


def both(vals, dtype, layout="contiguous", **kw):
    """The same input built in both frameworks: ((ours, our leaf), (torch's, torch's leaf))."""
    return build(ft, vals, dtype, layout, **kw), build(torch, vals, dtype, layout, **kw)


def run_both(fn, ours_args, theirs_args):
    """fn(M, *args) with ferrotorch and with torch. Where torch raises, ferrotorch must raise the
    same exception type (a PanicException is not one) and (None, None) is returned."""
    try:
        theirs = fn(torch, *theirs_args)
    except Exception as e:
        with pytest.raises(type(e)):
            fn(ft, *ours_args)
        return None, None
    return fn(ft, *ours_args), theirs


def _flat(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _differentiable(t):
    # torch marks some outputs as requiring grad yet refuses to differentiate them (floor_divide,
    # a scalar % tensor, an int tensor written with a float that requires grad): there is no
    # gradient to compare
    return (t.requires_grad and t.is_floating_point()
            and type(t.grad_fn).__name__ != "NotImplemented")


# A half-precision gradient goes through several roundings (upstream, local derivative, sum over
# broadcast dims): a few units in the last place apart is not a bug.
GRAD_TOLERANCE = {**TOLERANCE, "float16": TOLERANCE["bfloat16"]}


def check_grads(ours_out, theirs_out, ours_leaves, theirs_leaves):
    """Backpropagate the same upstream gradient through every output that requires grad, then
    compare each leaf's .grad with torch's (None where torch's is None). The gradients are
    compared with the tolerance of the least precise output they went through."""
    pairs = [(o, t) for o, t in zip(_flat(ours_out), _flat(theirs_out)) if _differentiable(t)]
    for o, t in pairs:
        assert o.requires_grad, "ferrotorch's output does not require grad, torch's does"
    if pairs:
        rng = np.random.default_rng(0)
        # quarters, so that products with dyadic inputs stay exact
        upstream = [np.asarray(rng.integers(-8, 9, size=t.shape) / 4) for _, t in pairs]
        torch.autograd.backward([t for _, t in pairs],
                                [torch.tensor(g).to(t.dtype) for (_, t), g in zip(pairs, upstream)])
        ft.autograd.backward([o for o, _ in pairs],
                             [ft.tensor(g).to(DTYPES[dtype_name(t.dtype)][0])
                              for (_, t), g in zip(pairs, upstream)])
    output_tolerances = [GRAD_TOLERANCE.get(dtype_name(t.dtype), (0, 0)) for _, t in pairs]
    for o, t in zip(ours_leaves, theirs_leaves):
        if t.grad is None:
            assert o.grad is None, "ferrotorch has a gradient where torch has none"
        else:
            assert o.grad is not None, "torch has a gradient where ferrotorch has none"
            leaf_tolerance = GRAD_TOLERANCE.get(dtype_name(t.dtype), (0, 0))
            rtol, atol = np.max(output_tolerances + [leaf_tolerance], axis=0)
            assert_same(o.grad, t.grad, rtol=rtol, atol=atol)


def check(fn, inputs):
    """fn(M, *tensors) on inputs [(numpy values, dtype, layout), ...] in both frameworks: same
    outcome, same outputs, same gradients for the float inputs."""
    ours_in, theirs_in = zip(*[both(v, d, lay, requires_grad=d in FLOATS + HALVES)
                               for v, d, lay in inputs])
    ours, theirs = run_both(fn, [x for x, _ in ours_in], [x for x, _ in theirs_in])
    if theirs is None:
        return
    assert_same(ours, theirs)
    check_grads(ours, theirs, [leaf for _, leaf in ours_in], [leaf for _, leaf in theirs_in])


@st.composite
def broadcastable_shapes(draw, n):
    """n shapes that broadcast together; one time in ten the last one is redrawn freely (so
    that it usually does not, and both frameworks must refuse it)."""
    drawn = list(draw(hnp.mutually_broadcastable_shapes(num_shapes=n, max_dims=4, min_side=0,
                                                        max_side=4)).input_shapes)
    if draw(st.integers(0, 9)) == 0:
        drawn[-1] = draw(shapes(max_rank=4))
    return drawn


# *** elementwise ***

UNARY = {name: (lambda M, x, name=name: getattr(M, name)(x)) for name in [
    "neg", "abs", "exp", "log", "log1p", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "sin", "cos",
    "floor", "ceil", "trunc", "round", "sign", "reciprocal"]}
UNARY.update({
    "gelu": lambda M, x: M.nn.functional.gelu(x),
    "gelu_tanh": lambda M, x: M.nn.functional.gelu(x, approximate="tanh"),
    "silu": lambda M, x: M.nn.functional.silu(x),
    "softplus": lambda M, x: M.nn.functional.softplus(x),
    "clamp": lambda M, x: x.clamp(-1.5, 2),
})


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data())
def test_unary(name, data):
    shape = data.draw(shapes())
    elements = TANH_GELU_ELEMENTS if name == "gelu_tanh" else with_specials()
    check(UNARY[name], [data.draw(tensor_inputs(shape, elements=elements))])


# torch's tanh-GELU gradient overflows x**3 in float32 beyond about 1e12 and gives NaN where the
# slope is 1 (or 0); ours stays finite, so values that large are left out of that comparison.
TANH_GELU_ELEMENTS = with_specials().filter(lambda v: not math.isfinite(v) or abs(v) < 1e12)


BINARY = {name: (lambda M, a, b, name=name: getattr(M, name)(a, b)) for name in [
    "add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "lt", "ge", "floor_divide",
    "remainder"]}


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data())
def test_binary(name, data):
    """Two tensors of any dtypes (torch's type promotion), broadcast shapes, any layouts."""
    a_shape, b_shape = data.draw(broadcastable_shapes(2))
    # torch's own pow backward fails on a bool exponent
    b_dtypes = tuple(d for d in ALL_DTYPES if d != "bool") if name == "pow" else ALL_DTYPES
    check(BINARY[name], [data.draw(tensor_inputs(a_shape, elements=with_specials())),
                         data.draw(tensor_inputs(b_shape, b_dtypes, with_specials()))])


SCALAR_OPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
              "truediv": operator.truediv, "pow": operator.pow, "floordiv": operator.floordiv,
              "mod": operator.mod, "eq": operator.eq, "lt": operator.lt, "ge": operator.ge}
python_scalars = st.one_of(st.integers(-5, 5), st.booleans(), with_specials())


@given(data=st.data(), name=st.sampled_from(sorted(SCALAR_OPS)), scalar=python_scalars,
       scalar_first=st.booleans())
def test_scalar_operand(data, name, scalar, scalar_first):
    """A tensor and a Python int, float or bool on either side: a scalar does not widen the
    tensor's dtype category unless it is of a higher one (int tensor + float scalar -> float)."""
    op = SCALAR_OPS[name]
    shape = data.draw(shapes(max_rank=3))
    elements = NO_UNDERFLOWING_SQUARE if name == "truediv" and scalar_first else with_specials()
    check(lambda M, x: op(scalar, x) if scalar_first else op(x, scalar),
          [data.draw(tensor_inputs(shape, elements=elements))])


# The gradient of s / x is -s / x**2: where x**2 underflows to 0 torch gives 0 / 0 = NaN and we
# a signed zero or inf; such x are left out of that comparison.
NO_UNDERFLOWING_SQUARE = with_specials().filter(lambda v: v == 0 or not abs(v) < 1e-150)


@given(data=st.data())
def test_where(data):
    """where(condition, x, y) with broadcast shapes; x and y tensors of any dtype or scalars."""
    cond_shape, x_shape, y_shape = data.draw(broadcastable_shapes(3))
    cond = data.draw(values(cond_shape, "bool"))
    x = data.draw(tensor_inputs(x_shape, elements=with_specials()))
    y = data.draw(tensor_inputs(y_shape, elements=with_specials()) | python_scalars)
    if isinstance(y, tuple):
        check(lambda M, c, x, y: M.where(c, x, y), [(cond, "bool", "contiguous"), x, y])
    else:
        check(lambda M, c, x: M.where(c, x, y), [(cond, "bool", "contiguous"), x])


# *** reductions ***

# name -> (fn(M, x, dim, keepdim), the `dim` it takes: "tuple" (None, int or tuple), "int"
# (None or int) or "required" (an int))
REDUCTIONS = {
    "sum": (lambda M, x, d, k: x.sum(dim=d, keepdim=k), "tuple"),
    "mean": (lambda M, x, d, k: x.mean(dim=d, keepdim=k), "tuple"),
    "amax": (lambda M, x, d, k: x.amax(dim=d, keepdim=k), "tuple"),
    "amin": (lambda M, x, d, k: M.amin(x, dim=d, keepdim=k), "tuple"),
    "max_dim": (lambda M, x, d, k: x.max(dim=d, keepdim=k), "required"),
    "min_dim": (lambda M, x, d, k: M.min(x, dim=d, keepdim=k), "required"),
    "argmax": (lambda M, x, d, k: x.argmax(dim=d, keepdim=k), "int"),
    "argmin": (lambda M, x, d, k: M.argmin(x, dim=d, keepdim=k), "int"),
    "std": (lambda M, x, d, k: x.std(dim=d, keepdim=k), "tuple"),
    "std_c0": (lambda M, x, d, k: M.std(x, dim=d, correction=0, keepdim=k), "tuple"),
    # A fractional correction keeps degrees of freedom above 0 (at dof <= 0 torch warns and its
    # gradient's signs are an artefact of inf * 0).
    "var_c05": (lambda M, x, d, k: x.var(dim=d, correction=0.5, keepdim=k), "tuple"),
    "logsumexp": (lambda M, x, d, k: M.logsumexp(x, dim=d, keepdim=k), "tuple"),
    "softmax": (lambda M, x, d, k: M.softmax(x, dim=d), "required"),
    "log_softmax": (lambda M, x, d, k: x.log_softmax(dim=d), "required"),
    "cumsum": (lambda M, x, d, k: M.cumsum(x, dim=d), "required"),
    "all": (lambda M, x, d, k: x.all(dim=d, keepdim=k), "tuple"),
    "any": (lambda M, x, d, k: M.any(x, dim=d, keepdim=k), "tuple"),
    "norm": (lambda M, x, d, k: M.norm(x, 2, dim=d, keepdim=k), "tuple"),
    "norm_1": (lambda M, x, d, k: x.norm(1, dim=d, keepdim=k), "tuple"),
    "norm_inf": (lambda M, x, d, k: M.norm(x, math.inf, dim=d, keepdim=k), "tuple"),
}
DIM_KINDS = {"tuple": {}, "int": {"tuples": False}, "required": {"tuples": False, "none": False}}
# NaN and ±inf only: a huge finite value could overflow or not depending on the summation order
nonfinite = st.one_of(dyadic, dyadic, dyadic, st.sampled_from([math.nan, math.inf, -math.inf]))


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@given(data=st.data(), keepdim=st.booleans(), special=st.booleans())
def test_reduction(name, data, keepdim, special):
    """Dyadic inputs keep float32 sums exact; with `special`, NaN and ±inf must land where
    torch's do (NaN positions and inf signs are compared exactly by assert_same)."""
    fn, dim_kind = REDUCTIONS[name]
    shape = data.draw(shapes())
    dim = data.draw(dims(len(shape), **DIM_KINDS[dim_kind]))
    elements = dyadic
    if special:
        elements = INF_ONLY if name == "norm_inf" else nonfinite
    x = data.draw(tensor_inputs(shape, elements=elements))
    check(lambda M, x: fn(M, x, dim, keepdim), [x])


# The inf-norm's gradient at a NaN is not compared: torch's is 0 there and ours NaN (a known
# difference, listed in docs/reliability.md).
INF_ONLY = st.one_of(dyadic, dyadic, dyadic, st.sampled_from([math.inf, -math.inf]))


powers_of_two = st.sampled_from([0, 0.5, -0.5, 1, -1, 2, -2])


@given(data=st.data(), keepdim=st.booleans())
def test_prod(data, keepdim):
    """prod over up to 64 elements that are 0, ±1/2, ±1 or ±2: exact, no overflow, and the
    zeros exercise the gradient's special case."""
    shape = data.draw(shapes(max_rank=3))
    dim = data.draw(dims(len(shape), tuples=False))
    x = data.draw(tensor_inputs(shape, elements=powers_of_two))
    if dim is None:
        check(lambda M, x: x.prod(), [x])
    else:
        check(lambda M, x: M.prod(x, dim, keepdim=keepdim), [x])


# *** matmul ***

MATMUL_DTYPES = FLOATS + ("bfloat16", "int64")


@given(data=st.data(), shapes_=hnp.mutually_broadcastable_shapes(
    signature=np.matmul.signature, max_dims=2, min_side=0, max_side=4))
def test_matmul(data, shapes_):
    """1-D to 4-D operands with broadcast batch dims; one time in ten the inner dims disagree,
    which torch refuses."""
    a_shape, b_shape = shapes_.input_shapes
    if data.draw(st.integers(0, 9)) == 0:
        inner = len(b_shape) - 2 if len(b_shape) >= 2 else 0
        b_shape = b_shape[:inner] + (b_shape[inner] + 1,) + b_shape[inner + 1:]
    a_dtype = b_dtype = data.draw(st.sampled_from(MATMUL_DTYPES))
    if data.draw(st.integers(0, 9)) == 0:
        b_dtype = data.draw(st.sampled_from(MATMUL_DTYPES))  # mixed dtypes: torch refuses them
    check(lambda M, a, b: M.matmul(a, b),
          [data.draw(tensor_inputs(a_shape, dtypes=(a_dtype,), elements=dyadic)),
           data.draw(tensor_inputs(b_shape, dtypes=(b_dtype,), elements=dyadic))])


@pytest.mark.parametrize("name", ["mm", "bmm"])
@given(data=st.data(), sizes=st.lists(st.integers(0, 4), min_size=4, max_size=4),
       broken=st.sampled_from([None, None, None, "inner", "rank"]))
def test_mm_bmm(name, data, sizes, broken):
    """mm on (n, k) @ (k, m), bmm on (b, n, k) @ (b, k, m); `broken` makes inner sizes disagree
    or gives a wrong rank, which torch refuses."""
    b, n, k, m = sizes
    a_shape, b_shape = [n, k], [k + (broken == "inner"), m]
    if name == "bmm":
        a_shape, b_shape = [b] + a_shape, [b] + b_shape
    if broken == "rank":
        b_shape = b_shape[1:]
    dtype = data.draw(st.sampled_from(FLOATS))
    check(lambda M, x, y: getattr(M, name)(x, y),
          [data.draw(tensor_inputs(tuple(a_shape), dtypes=(dtype,), elements=dyadic)),
           data.draw(tensor_inputs(tuple(b_shape), dtypes=(dtype,), elements=dyadic))])


# *** indexing ***

INDEX_DTYPES = FLOATS + ("int64", "bool")


@given(data=st.data())
def test_getitem(data):
    """Basic, advanced (broadcast index arrays, dims moved to the front when they are not
    adjacent) and boolean-mask indexing, on every layout, with gradients."""
    shape = data.draw(shapes(max_rank=4))
    index = data.draw(indices(shape))
    x = data.draw(tensor_inputs(shape, dtypes=INDEX_DTYPES, elements=with_specials()))
    check(lambda M, x: x[as_index(M, index)], [x])


def _has_duplicate_targets(shape, index):
    """Whether `index` selects some element twice (then which write wins is unspecified)."""
    ids = torch.arange(math.prod(shape)).reshape(shape)[as_index(torch, index)]
    return ids.unique().numel() < ids.numel()


@given(data=st.data())
def test_setitem(data):
    """x[index] = value on a view of a clone of a leaf: a Python scalar or a tensor that
    broadcasts to the selection; compares the written view and the gradients of both leaves."""
    shape = data.draw(shapes(max_rank=4))
    index = data.draw(indices(shape))
    vals, dtype, layout = data.draw(tensor_inputs(shape, dtypes=INDEX_DTYPES, layouts=LAYOUTS[:3]))
    try:
        selected = torch.empty(shape)[as_index(torch, index)].shape
        tensor_value = not _has_duplicate_targets(shape, index) and data.draw(st.booleans())
    except (IndexError, RuntimeError, ValueError):
        tensor_value = False  # the index is refused: both must refuse it with any value
    floating = dtype in FLOATS
    (x, x_leaf), (t, t_leaf) = both(vals, dtype, layout, requires_grad=floating, clone=floating)

    def write(M, x, value):
        x[as_index(M, index)] = value
        return x

    if tensor_value:
        value_shape = selected[data.draw(st.integers(0, len(selected))):]
        value_shape = tuple(s if data.draw(st.booleans()) else 1 for s in value_shape)
        value_dtype = data.draw(st.sampled_from([dtype, dtype, "float64", "int64"]))
        (v, v_leaf), (u, u_leaf) = both(data.draw(values(value_shape, value_dtype)), value_dtype,
                                        requires_grad=value_dtype in FLOATS)
        leaves = [x_leaf, v_leaf], [t_leaf, u_leaf]
    else:
        v = u = data.draw(python_scalars)
        leaves = [x_leaf], [t_leaf]
    ours, theirs = run_both(write, [x, v], [t, u])
    if theirs is not None:
        assert_same(ours, theirs)
        check_grads(ours, theirs, *leaves)


# *** views ***

@st.composite
def expand_sizes(draw, shape):
    """Sizes for expand: -1 or the size itself, a singleton grown to 0..3, maybe new leading
    dims; one time in ten a non-singleton dim that tries to grow."""
    sizes = [draw(st.sampled_from([-1, s] if s != 1 else [-1, 0, 1, 3])) for s in shape]
    if shape and draw(st.integers(0, 9)) == 0:
        sizes[0] += 2
    return tuple(draw(st.lists(st.integers(0, 3), max_size=2)) + sizes)


@st.composite
def split_sizes(draw, size):
    """A split size, or a list of sections that sums to `size` unless it overshot."""
    if draw(st.booleans()):
        return draw(st.integers(1, 4))
    sections = draw(st.lists(st.integers(0, size), min_size=1, max_size=3))
    return sections + [max(size - sum(sections), 0)]


@st.composite
def unflatten_args(draw, shape):
    """(dim, sizes) with sizes that multiply to the size of dim (usually)."""
    dim = draw(dim_of(len(shape)))
    size = shape[dim] if -len(shape) <= dim < len(shape) else 1
    return dim, draw(same_numel_shape((size,)))


def movedim_args(rank):
    """(source, destination): two dims, or two tuples of distinct dims of the same length."""
    perms = st.permutations(range(rank))
    return st.tuples(dim_of(rank), dim_of(rank)) | st.integers(0, rank).flatmap(
        lambda n: st.tuples(perms.map(lambda p: tuple(p[:n])), perms.map(lambda p: tuple(p[:n]))))


# name -> (fn(M, x, *args), shape -> strategy for the args)
VIEW_OPS = {
    "reshape": (lambda M, x, t: x.reshape(t), lambda s: st.tuples(same_numel_shape(s))),
    "view": (lambda M, x, t: x.view(*t), lambda s: st.tuples(same_numel_shape(s))),
    "permute": (lambda M, x, p: x.permute(p), lambda s: st.tuples(st.permutations(range(len(s))))),
    "transpose": (lambda M, x, a, b: x.transpose(a, b),
                  lambda s: st.tuples(dim_of(len(s)), dim_of(len(s)))),
    "t": (lambda M, x: x.t(), lambda s: st.tuples()),
    "expand": (lambda M, x, t: x.expand(t), lambda s: st.tuples(expand_sizes(s))),
    "squeeze": (lambda M, x, d: x.squeeze() if d is None else x.squeeze(d),
                lambda s: st.tuples(dims(len(s)))),
    "unsqueeze": (lambda M, x, d: M.unsqueeze(x, d), lambda s: st.tuples(dim_of(len(s) + 1))),
    "flatten": (lambda M, x, a, b: x.flatten(a, b),
                lambda s: st.tuples(dim_of(len(s)), dim_of(len(s)))),
    "unflatten": (lambda M, x, d, t: x.unflatten(d, t), unflatten_args),
    "narrow": (lambda M, x, d, a, n: x.narrow(d, a, n),
               lambda s: st.tuples(dim_of(len(s)), st.integers(-4, 4), st.integers(0, 4))),
    "split": (lambda M, x, z: x.split(z, -1), lambda s: st.tuples(split_sizes(s[-1] if s else 0))),
    "chunk": (lambda M, x, c, d: M.chunk(x, c, d),
              lambda s: st.tuples(st.integers(1, 5), dim_of(len(s)))),
    "unbind": (lambda M, x, d: x.unbind(d), lambda s: st.tuples(dim_of(len(s)))),
    "movedim": (lambda M, x, a, b: x.movedim(a, b), lambda s: movedim_args(len(s))),
}


def view_op(data, name, shape):
    """fn(M, x) applying view op `name` with arguments drawn for an input of `shape`."""
    fn, args = VIEW_OPS[name]
    drawn = data.draw(args(shape))
    return lambda M, x: fn(M, x, *drawn)


@given(data=st.data(), name=st.sampled_from(sorted(VIEW_OPS)))
def test_view_op(data, name):
    """Values and gradients through each view op, on every layout; illegal arguments (and
    view() of a layout it cannot describe) must raise torch's exception type."""
    shape = data.draw(shapes())
    op = view_op(data, name, shape)
    check(op, [data.draw(tensor_inputs(shape, dtypes=FLOATS + INTS + ("bool",)))])


@given(data=st.data(), name=st.sampled_from(sorted(VIEW_OPS)))
def test_write_through_view(data, name):
    """An in-place add on (the first piece of) the op's result shows in the tensor it was taken
    from exactly when torch's does: views share memory, copies (reshape of a layout it cannot
    view) do not, and an expanded input refuses writes to its repeated elements."""
    shape = data.draw(shapes())
    op = view_op(data, name, shape)
    vals, dtype, layout = data.draw(tensor_inputs(shape, dtypes=("float64", "int64")))
    (x, x_leaf), (t, t_leaf) = both(vals, dtype, layout)

    def op_then_write(M, x):
        pieces = _flat(op(M, x))
        if pieces:
            pieces[0].add_(100)
        return pieces

    ours, theirs = run_both(op_then_write, [x], [t])
    if theirs is not None:
        assert_same(ours, theirs)
        assert_same(x, t)
        assert_same(x_leaf, t_leaf)
