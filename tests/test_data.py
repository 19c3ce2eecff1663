"""Differential tests of ferrotorch.utils.data against torch.utils.data.

Every loader, sampler and collate result is compared with torch's, computed in the same test
with the same seed or generator: batch contents, batch order (shuffled epochs included),
collated types and dtypes, lengths and the exceptions raised for bad arguments.
"""

import collections
import warnings

import ferrotorch as ft
import ferrotorch.utils.data as fdata
import numpy as np
import pytest
import torch
import torch.utils.data as tdata
from conftest import assert_same, make_layout, pair

FLOATS = ["float32", "float64"]
LAYOUTS = ["contiguous", "transposed", "sliced"]
Point = collections.namedtuple("Point", ["x", "y"])


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def assert_tree(ours, theirs):
    """ours equals theirs through any nesting: same container types, keys, tensor values."""
    if isinstance(theirs, torch.Tensor):
        assert_same(ours, theirs, rtol=0, atol=0)
    elif isinstance(theirs, tuple) and hasattr(theirs, "_fields"):
        assert type(ours).__name__ == type(theirs).__name__ and ours._fields == theirs._fields
        for o, t in zip(ours, theirs):
            assert_tree(o, t)
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs), f"{type(ours)} != torch {type(theirs)}"
        assert len(ours) == len(theirs), f"{len(ours)} items, torch gives {len(theirs)}"
        for o, t in zip(ours, theirs):
            assert_tree(o, t)
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs), f"{type(ours)} != torch {type(theirs)}"
        assert list(ours) == list(theirs)
        for k in theirs:
            assert_tree(ours[k], theirs[k])
    else:
        assert type(ours) is type(theirs) and ours == theirs, f"{ours!r} != torch {theirs!r}"


def both(fn):
    """fn(M, D) run with (ferrotorch, its data module) and (torch, torch.utils.data)."""
    return fn(ft, fdata), fn(torch, tdata)


def seeded_epochs(make_loader, seed, epochs=2):
    """The batches of `epochs` passes over make_loader(M, D), after M.manual_seed(seed)."""

    def run(M, D):
        M.manual_seed(seed)
        loader = make_loader(M, D)
        return [list(loader) for _ in range(epochs)]

    return both(run)


def tensor_pair(n, dtype="float32", layout="contiguous", seed=0):
    """(ours, theirs): n samples of shape (3,), plus int64 labels, as tensors with equal values."""
    x, tx = pair((n, 3), dtype, layout, seed)
    y, ty = pair((n,), "int64", "contiguous", seed + 1, low=0, high=9)
    return (x, y), (tx, ty)


def raises_like(fn):
    """fn(M, D) raises on both sides: the same exception type and message."""
    errors = []
    for M, D in ((torch, tdata), (ft, fdata)):
        with pytest.raises(Exception) as info:
            fn(M, D)
        errors.append(info.value)
    theirs, ours = errors
    assert type(ours) is type(theirs), f"{type(ours).__name__}: {ours} (torch: {theirs!r})"
    return ours, theirs


class Squares:
    """A map-style dataset without Dataset as base: sample i is (i, i*i as float, 'name i')."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return i, float(i * i), f"name {i}"


def make_stream(D, n):
    class Stream(D.IterableDataset):
        def __init__(self, n):
            self.n = n

        def __iter__(self):
            return iter(range(self.n))

        def __len__(self):
            return self.n

    return Stream(n)


# --------------------------------------------------------------------------------------------
# DataLoader: order and contents
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("batch_size,drop_last", [(1, False), (4, False), (4, True), (10, False),
                                                  (11, False), (13, True)])
def test_sequential_batches(dtype, layout, batch_size, drop_last):
    (x, y), (tx, ty) = tensor_pair(10, dtype, layout)
    ours = list(fdata.DataLoader(fdata.TensorDataset(x, y), batch_size, drop_last=drop_last))
    theirs = list(tdata.DataLoader(tdata.TensorDataset(tx, ty), batch_size, drop_last=drop_last))
    assert_tree(ours, theirs)


@pytest.mark.parametrize("seed", [0, 1, 123])
@pytest.mark.parametrize("batch_size,drop_last", [(1, False), (3, False), (3, True), (7, False)])
def test_shuffle_global_seed(seed, batch_size, drop_last):
    (x, y), (tx, ty) = tensor_pair(20)
    ours, theirs = seeded_epochs(
        lambda M, D: D.DataLoader(
            D.TensorDataset(*((x, y) if M is ft else (tx, ty))), batch_size=batch_size,
            shuffle=True, drop_last=drop_last),
        seed, epochs=3)
    assert_tree(ours, theirs)


def test_shuffle_then_global_stream_matches():
    """After a shuffled epoch the global generator is where torch leaves it."""

    def run(M, D):
        M.manual_seed(7)
        list(D.DataLoader(list(range(10)), batch_size=3, shuffle=True))
        return M.rand(4, dtype=M.float64)

    assert_tree(*both(run))


@pytest.mark.parametrize("use_generator", [False, True])
def test_unshuffled_epochs_advance_generators_like_torch(use_generator):
    """Each pass draws a base seed (torch's worker seed) from the loader's generator."""

    def run(M, D):
        M.manual_seed(21)
        g = M.Generator().manual_seed(5) if use_generator else None
        loader = D.DataLoader(Squares(5), batch_size=2, generator=g)
        batches = [list(loader), list(loader)]
        probes = [M.rand(2, dtype=M.float64)]
        if g is not None:
            probes.append(M.rand(2, dtype=M.float64, generator=g))
        return batches, probes

    assert_tree(*both(run))


@pytest.mark.parametrize("seed", [0, 42])
def test_shuffle_with_generator(seed):
    (x, y), (tx, ty) = tensor_pair(17, "float64", "sliced")

    def run(M, D):
        M.manual_seed(999)  # must not matter: the loader's generator decides
        g = M.Generator().manual_seed(seed)
        loader = D.DataLoader(D.TensorDataset(*((x, y) if M is ft else (tx, ty))),
                              batch_size=5, shuffle=True, generator=g)
        epochs = [list(loader) for _ in range(2)]
        return epochs, M.rand(3, dtype=M.float64)  # the global stream untouched likewise

    assert_tree(*both(run))


def test_python_list_dataset_and_tuple_samples():
    ours, theirs = seeded_epochs(
        lambda M, D: D.DataLoader(Squares(11), batch_size=4, shuffle=True), 5)
    assert_tree(ours, theirs)


def test_batch_size_none_no_collation():
    def run(M, D):
        samples = [np.arange(3.0) + i for i in range(4)]
        return list(D.DataLoader(samples, batch_size=None)), list(
            D.DataLoader(Squares(3), batch_size=None))

    assert_tree(*both(run))


def test_custom_sampler_and_batch_sampler():
    def run(M, D):
        ds = Squares(9)
        by_sampler = list(D.DataLoader(ds, batch_size=2, sampler=[8, 1, 5, 3, 0]))
        by_batches = list(D.DataLoader(ds, batch_sampler=[[4, 2], [7], [0, 1, 6]]))
        loader = D.DataLoader(ds, batch_sampler=[[4, 2], [7]])
        return by_sampler, by_batches, len(loader), loader.batch_size, loader.drop_last

    assert_tree(*both(run))


def test_custom_collate_fn_and_getitems():
    class Batched(fdata.Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            raise AssertionError("__getitems__ should be used")

        def __getitems__(self, indices):
            return [i * 10 for i in indices]

    ours = list(fdata.DataLoader(Batched(), batch_size=4, collate_fn=lambda b: sum(b)))
    tds = type("Batched", (tdata.Dataset,), dict(Batched.__dict__))()
    theirs = list(tdata.DataLoader(tds, batch_size=4, collate_fn=lambda b: sum(b)))
    assert ours == theirs


@pytest.mark.parametrize("batch_size,drop_last", [(1, False), (3, False), (3, True), (None, False)])
def test_iterable_dataset(batch_size, drop_last):
    def run(M, D):
        loader = D.DataLoader(make_stream(D, 8), batch_size=batch_size, drop_last=drop_last)
        return list(loader), len(loader)

    assert_tree(*both(run))


def test_iterable_dataset_len_warning():
    def run(M, D):
        ds = make_stream(D, 5)
        loader = D.DataLoader(ds, batch_size=2)
        len(loader)
        ds.n = 9  # the stream grew after len() was taken
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            batches = list(loader)
        return batches, [type(w.message) for w in caught if "IterableDataset" in str(w.message)]

    assert_tree(*both(run))


def test_num_workers_warns_and_loads_in_order():
    (x, y), (tx, ty) = tensor_pair(9)
    with pytest.warns(UserWarning, match="no worker processes"):
        loader = fdata.DataLoader(fdata.TensorDataset(x, y), batch_size=2, shuffle=True,
                                  num_workers=2, pin_memory=True, prefetch_factor=3,
                                  persistent_workers=True, worker_init_fn=lambda i: None)
    ft.manual_seed(3)
    ours = list(loader)
    torch.manual_seed(3)  # torch with workers loads the same order; compare in-process
    theirs = list(tdata.DataLoader(tdata.TensorDataset(tx, ty), batch_size=2, shuffle=True))
    assert_tree(ours, theirs)


def test_len():
    def run(M, D):
        ds = Squares(10)
        return [
            len(D.DataLoader(ds)), len(D.DataLoader(ds, batch_size=3)),
            len(D.DataLoader(ds, batch_size=3, drop_last=True)),
            len(D.DataLoader(ds, batch_size=None)),
            len(D.DataLoader(ds, batch_size=4, shuffle=True)),
            len(D.DataLoader(make_stream(D, 7), batch_size=2)),
            len(D.DataLoader(make_stream(D, 7), batch_size=2, drop_last=True)),
            len(iter(D.DataLoader(ds, batch_size=3))),
        ]

    assert_tree(*both(run))


# --------------------------------------------------------------------------------------------
# DataLoader: argument errors
# --------------------------------------------------------------------------------------------

BAD_LOADERS = {
    "negative workers": lambda M, D: D.DataLoader(Squares(3), num_workers=-1),
    "negative timeout": lambda M, D: D.DataLoader(Squares(3), timeout=-1),
    "prefetch without workers": lambda M, D: D.DataLoader(Squares(3), prefetch_factor=2),
    "persistent without workers": lambda M, D: D.DataLoader(Squares(3), persistent_workers=True),
    "context without workers": lambda M, D: D.DataLoader(Squares(3),
                                                         multiprocessing_context="spawn"),
    "sampler and shuffle": lambda M, D: D.DataLoader(Squares(3), sampler=[0], shuffle=True),
    "batch_sampler and batch_size": lambda M, D: D.DataLoader(Squares(3), batch_size=2,
                                                              batch_sampler=[[0]]),
    "batch_sampler and drop_last": lambda M, D: D.DataLoader(Squares(3), batch_sampler=[[0]],
                                                             drop_last=True),
    "no batching and drop_last": lambda M, D: D.DataLoader(Squares(3), batch_size=None,
                                                           drop_last=True),
    "iterable and shuffle": lambda M, D: D.DataLoader(make_stream(D, 3), shuffle=True),
    "iterable and sampler": lambda M, D: D.DataLoader(make_stream(D, 3), sampler=[0]),
    "iterable and batch_sampler": lambda M, D: D.DataLoader(make_stream(D, 3),
                                                            batch_sampler=[[0]]),
    "batch_size zero": lambda M, D: D.DataLoader(Squares(3), batch_size=0),
    "batch_size float": lambda M, D: D.DataLoader(Squares(3), batch_size=2.0),
    "drop_last not bool": lambda M, D: D.DataLoader(Squares(3), drop_last=1),
    "set after init": lambda M, D: setattr(D.DataLoader(Squares(3)), "batch_size", 4),
    "timeout without workers": lambda M, D: iter(D.DataLoader(Squares(3), timeout=1)),
    "len of iterable without len": lambda M, D: len(D.DataLoader(type(
        "S", (D.IterableDataset,), {"__iter__": lambda self: iter([1])})())),
    "ragged list samples": lambda M, D: list(D.DataLoader([[1, 2], [3]], batch_size=2)),
    "uncollatable sample": lambda M, D: list(D.DataLoader([object()], batch_size=1)),
}


@pytest.mark.parametrize("case", list(BAD_LOADERS))
def test_loader_errors(case):
    ours, theirs = raises_like(BAD_LOADERS[case])
    if not isinstance(theirs, AssertionError):
        assert str(ours).split()[:3] == str(theirs).split()[:3], f"{ours} vs torch {theirs}"


# --------------------------------------------------------------------------------------------
# collation
# --------------------------------------------------------------------------------------------


def _collate_cases(M):
    a = M.arange(6, dtype=M.float32).reshape(2, 3)
    b = M.arange(6, dtype=M.float64).reshape(3, 2).t()  # non-contiguous
    return {
        "ints": [0, 5, -3],
        "floats": [0.5, 2.0, -1.25],
        "bools": [True, False, True],
        "int then float": [1, 2.5],
        "float then int": [2.5, 1],
        "strings": ["a", "bc"],
        "bytes": [b"a", b"bc"],
        "tensors": [a, a * 2, a + 1],
        "non-contiguous tensors": [b, b * 3],
        "scalar tensors": [M.tensor(1.5), M.tensor(2.5)],
        "int tensors": [M.tensor([1, 2]), M.tensor([3, 4])],
        "tuples": [(1, 2.0, "x"), (3, 4.0, "y")],
        "lists": [[1, 2.0], [3, 4.0]],
        "dicts": [{"a": 1, "b": [0.5, "s"]}, {"a": 2, "b": [1.5, "t"]}],
        "ordered dicts": [collections.OrderedDict(z=1, a=2.0),
                          collections.OrderedDict(z=3, a=4.0)],
        "namedtuples": [Point(1, a), Point(2, a)],
        "numpy arrays": [np.arange(4, dtype=np.float32), np.ones(4, dtype=np.float32)],
        "numpy int arrays": [np.arange(3, dtype=np.int64), np.arange(3, dtype=np.int64)],
        "numpy 0-d arrays": [np.array(1.0), np.array(2.0)],
        "numpy scalars f32": [np.float32(1.5), np.float32(2)],
        "numpy scalars i32": [np.int32(1), np.int32(7)],
        "numpy scalars f64": [np.float64(1.5), np.float64(2)],
        "numpy bools": [np.bool_(True), np.bool_(False)],
        "nested": [{"x": (a, [1, 2]), "y": "s"}, {"x": (a + 1, [3, 4]), "y": "t"}],
    }


@pytest.mark.parametrize("case", list(_collate_cases(torch)))
def test_default_collate(case):
    ours = fdata.default_collate(_collate_cases(ft)[case])
    theirs = tdata.default_collate(_collate_cases(torch)[case])
    assert_tree(ours, theirs)


@pytest.mark.parametrize("case", list(_collate_cases(torch)))
def test_default_convert(case):
    for sample in range(2):
        ours = fdata.default_convert(_collate_cases(ft)[case][sample])
        theirs = tdata.default_convert(_collate_cases(torch)[case][sample])
        assert_tree(ours, theirs)


def test_collate_numpy_array_copies():
    arrays = [np.zeros(3, dtype=np.float32), np.ones(3, dtype=np.float32)]
    batch = fdata.default_collate(arrays)
    arrays[0][:] = 5
    assert_tree(batch, tdata.default_collate([np.zeros(3, dtype=np.float32),
                                             np.ones(3, dtype=np.float32)]))


@pytest.mark.parametrize("batch", [[object()], [np.array(["a", "b"])], [[1, 2], [1]], [None]])
def test_collate_errors(batch):
    ours, theirs = raises_like(lambda M, D: D.default_collate(batch))
    assert str(ours) == str(theirs).replace("torch.", "ferrotorch.")


def test_collate_mismatched_tensor_shapes():
    raises_like(lambda M, D: D.default_collate([M.zeros(2), M.zeros(3)]))


# --------------------------------------------------------------------------------------------
# samplers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,num_samples", [(7, None), (7, 3), (7, 16), (5, 5)])
def test_random_sampler_without_replacement(n, num_samples):
    def run(M, D):
        M.manual_seed(11)
        unseeded = D.RandomSampler(range(n), num_samples=num_samples)
        seeded = D.RandomSampler(range(n), num_samples=num_samples,
                                 generator=M.Generator().manual_seed(4))
        return list(unseeded), list(unseeded), list(seeded), len(seeded)

    assert_tree(*both(run))


@pytest.mark.parametrize("num_samples", [None, 5, 31, 32, 70])
def test_random_sampler_with_replacement(num_samples):
    def run(M, D):
        M.manual_seed(2)
        s = D.RandomSampler(range(9), replacement=True, num_samples=num_samples)
        g = D.RandomSampler(range(9), True, num_samples, generator=M.Generator().manual_seed(8))
        return list(s), list(g), len(s)

    assert_tree(*both(run))


def test_sequential_subset_batch_samplers():
    def run(M, D):
        M.manual_seed(5)
        seq = D.SequentialSampler(range(5))
        sub = D.SubsetRandomSampler([10, 20, 30, 40], generator=M.Generator().manual_seed(1))
        unseeded_sub = D.SubsetRandomSampler([3, 1, 4, 1, 5])
        b1 = D.BatchSampler(seq, 2, False)
        b2 = D.BatchSampler(range(7), 3, True)
        return (list(seq), len(seq), list(sub), len(sub), list(unseeded_sub), list(b1),
                len(b1), list(b2), len(b2))

    assert_tree(*both(run))


def test_weighted_random_sampler():
    def run(M, D):
        M.manual_seed(6)
        w = D.WeightedRandomSampler([0.1, 0.9, 0.4, 0.7, 3.0, 0.6], 10)
        w_norep = D.WeightedRandomSampler([0.9, 0.4, 0.05, 0.2, 0.3, 0.1], 5, replacement=False,
                                          generator=M.Generator().manual_seed(3))
        return list(w), list(w_norep), len(w)

    assert_tree(*both(run))


BAD_SAMPLERS = {
    "replacement not bool": lambda M, D: D.RandomSampler(range(3), replacement=1),
    "num_samples zero": lambda M, D: D.RandomSampler(range(3), num_samples=0),
    "empty source": lambda M, D: D.RandomSampler([]),
    "batch_size negative": lambda M, D: D.BatchSampler(range(3), -1, False),
    "batch_size bool": lambda M, D: D.BatchSampler(range(3), True, False),
    "drop_last none": lambda M, D: D.BatchSampler(range(3), 2, None),
    "weighted num_samples": lambda M, D: D.WeightedRandomSampler([1.0, 2.0], 0),
    "weighted replacement": lambda M, D: D.WeightedRandomSampler([1.0, 2.0], 1, replacement=0),
    "weighted 2-d": lambda M, D: D.WeightedRandomSampler([[1.0, 2.0]], 1),
    "sampler iter": lambda M, D: iter(D.Sampler()).__next__(),
}


@pytest.mark.parametrize("case", list(BAD_SAMPLERS))
def test_sampler_errors(case):
    ours, theirs = raises_like(BAD_SAMPLERS[case])
    assert str(ours) == str(theirs)


# --------------------------------------------------------------------------------------------
# datasets and random_split
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
def test_tensor_dataset(dtype):
    (x, y), (tx, ty) = tensor_pair(6, dtype, "transposed")
    ours, theirs = fdata.TensorDataset(x, y), tdata.TensorDataset(tx, ty)
    assert len(ours) == len(theirs)
    for i in (0, 5, -1, slice(1, 4)):
        assert_tree(ours[i], theirs[i])
    raises_like(lambda M, D: D.TensorDataset(M.zeros(3), M.zeros(4)))


def test_concat_subset_stack_chain():
    def run(M, D):
        a, b = Squares(3), Squares(4)
        cat = D.ConcatDataset([a, b])
        sub = D.Subset(cat, [6, 0, 3])
        stack = D.StackDataset(Squares(2), [7, 8])
        kw_stack = D.StackDataset(p=Squares(2), q=[7, 8])
        chain = make_stream(D, 2) + make_stream(D, 3)
        t = M.arange(4)
        cat_t = D.TensorDataset(t) + D.TensorDataset(t * 2)
        return ([cat[i] for i in range(len(cat))], cat[-1], cat.cumulative_sizes, len(cat),
                [sub[i] for i in range(len(sub))], len(sub),
                [stack[i] for i in range(2)], [kw_stack[i] for i in range(2)],
                list(chain), len(chain), type(chain).__name__, [cat_t[i] for i in range(8)],
                list(D.DataLoader(sub, batch_size=2)))

    assert_tree(*both(run))


DATASET_ERRORS = {
    "concat empty": lambda M, D: D.ConcatDataset([]),
    "concat iterable": lambda M, D: D.ConcatDataset([make_stream(D, 2)]),
    "concat bad index": lambda M, D: D.ConcatDataset([Squares(2)])[-3],
    "stack mismatch": lambda M, D: D.StackDataset([1], [1, 2]),
    "stack both kinds": lambda M, D: D.StackDataset([1], q=[1]),
    "stack none": lambda M, D: D.StackDataset(),
    "chain of map-style": lambda M, D: list(D.ChainDataset([[1, 2]])),
    "dataset getitem": lambda M, D: D.Dataset()[0],
    "split lengths": lambda M, D: D.random_split(range(5), [2, 2]),
    "split fraction": lambda M, D: D.random_split(range(5), [1.5, -0.5]),
}


@pytest.mark.parametrize("case", list(DATASET_ERRORS))
def test_dataset_errors(case):
    ours, theirs = raises_like(DATASET_ERRORS[case])
    # torch's words (its message misses a space after "or"), where ours may go on to name the
    # offending values
    words = str(theirs).split("!")[0].replace(" ", "").rstrip(".")
    assert str(ours).split("!")[0].replace(" ", "").startswith(words)


@pytest.mark.parametrize("lengths", [[3, 7], [0, 10], [10], [0.3, 0.3, 0.4], [0.5, 0.5],
                                     [0.25, 0.25, 0.25, 0.25], [0.1, 0.9], [1.0]])
def test_random_split(lengths):
    def run(M, D):
        M.manual_seed(17)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            default = D.random_split(range(10), lengths)
            explicit = D.random_split(list(range(100, 110)), lengths,
                                      generator=M.Generator().manual_seed(42))
        after = M.rand(2, dtype=M.float64)  # the default generator advanced like torch's
        return ([list(s) for s in default], [s.indices for s in explicit],
                [list(s) for s in explicit], after,
                [str(w.message) for w in caught])

    assert_tree(*both(run))


def test_random_split_of_tensor_dataset_through_loader():
    (x, y), (tx, ty) = tensor_pair(12, "float32", "sliced")

    def run(M, D):
        ds = D.TensorDataset(*((x, y) if M is ft else (tx, ty)))
        train, val = D.random_split(ds, [0.75, 0.25], generator=M.Generator().manual_seed(0))
        M.manual_seed(1)
        return (list(D.DataLoader(train, batch_size=4, shuffle=True)),
                list(D.DataLoader(val, batch_size=2)))

    assert_tree(*both(run))


def test_make_layout_dataset_values_match():
    """TensorDataset indexing of non-contiguous inputs gives the viewed values."""
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    theirs = tdata.TensorDataset(make_layout(base, "transposed"))
    ours = fdata.TensorDataset(make_layout(ft.tensor(base.numpy()), "transposed", ft))
    assert_tree([ours[i] for i in range(4)], [theirs[i] for i in range(4)])
