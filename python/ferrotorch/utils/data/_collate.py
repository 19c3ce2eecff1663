"""Turning a list of samples into a batch: ``default_collate`` and ``default_convert``.

The rules are torch's: tensors are stacked along a new first dimension, Python ints become an
int64 tensor and floats a float64 tensor, numpy arrays and scalars become tensors of their
dtype, mappings/namedtuples/sequences are collated field by field (a tuple becomes a list, as in
torch), and strings and bytes are kept as a list.
"""

import collections.abc
import copy
import re

import numpy as np

from ferrotorch._C import Tensor

# numpy dtypes that hold strings or Python objects cannot become tensors (torch's pattern).
_NP_STR_OBJ = re.compile(r"[SaUO]")

_ERR_FORMAT = (
    "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"
)


def _ft():
    # `ferrotorch` imports this package while it is still initializing; look it up at call time.
    import ferrotorch

    return ferrotorch


def _from_numpy(array):
    """A tensor with the values and dtype of a numpy array or scalar.

    The values are copied: a numpy scalar's buffer is a temporary, and a batch is a copy anyway.
    """
    return _ft().from_numpy(np.array(array, order="C", copy=True))


# *** default_convert: used when automatic batching is off ***


def default_convert(data):
    """Converts numpy arrays and numpy scalars inside ``data`` to tensors, leaving everything
    else (tensors, Python numbers, strings) unchanged; containers are converted element by
    element.

    >>> import numpy as np
    >>> default_convert([np.array([0, 1]), 2])
    [tensor([0, 1]), 2]
    """
    elem_type = type(data)
    if isinstance(data, Tensor):
        return data
    if elem_type.__module__ == "numpy" and elem_type.__name__ not in ("str_", "string_"):
        if elem_type.__name__ == "ndarray" and _NP_STR_OBJ.search(data.dtype.str) is not None:
            return data
        return _from_numpy(data)
    if isinstance(data, collections.abc.Mapping):
        converted = {key: default_convert(data[key]) for key in data}
        return _rebuild_mapping(data, converted)
    if isinstance(data, tuple) and hasattr(data, "_fields"):  # namedtuple
        return elem_type(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]  # torch returns a list here
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _rebuild_sequence(data, [default_convert(d) for d in data])
    return data


def _rebuild_mapping(template, values):
    """A mapping of the template's type (OrderedDict, defaultdict, ...) holding `values`; a
    plain dict when that type cannot be rebuilt."""
    try:
        if isinstance(template, collections.abc.MutableMapping):
            clone = copy.copy(template)
            clone.update(values)
            return clone
        return type(template)(values)
    except TypeError:
        return values


def _rebuild_sequence(template, values):
    try:
        if isinstance(template, collections.abc.MutableSequence):
            clone = copy.copy(template)
            for i, v in enumerate(values):
                clone[i] = v
            return clone
        return type(template)(values)
    except TypeError:
        return list(values)


# *** collate: per-type functions chosen through a registry ***


def collate_tensor_fn(batch, *, collate_fn_map=None):
    return _ft().stack(list(batch), 0)


def collate_numpy_array_fn(batch, *, collate_fn_map=None):
    elem = batch[0]
    if _NP_STR_OBJ.search(elem.dtype.str) is not None:
        raise TypeError(_ERR_FORMAT.format(elem.dtype))
    return collate([_from_numpy(b) for b in batch], collate_fn_map=collate_fn_map)


def collate_numpy_scalar_fn(batch, *, collate_fn_map=None):
    # numpy's promotion of a list of numpy scalars is torch.as_tensor's here.
    return _from_numpy(np.asarray(batch))


def collate_float_fn(batch, *, collate_fn_map=None):
    return _ft().tensor(list(batch), dtype=_ft().float64)


def collate_int_fn(batch, *, collate_fn_map=None):
    return _ft().tensor(list(batch))


def collate_str_fn(batch, *, collate_fn_map=None):
    return batch


default_collate_fn_map = {
    Tensor: collate_tensor_fn,
    np.ndarray: collate_numpy_array_fn,
    (np.bool_, np.number, np.object_): collate_numpy_scalar_fn,
    float: collate_float_fn,
    int: collate_int_fn,
    str: collate_str_fn,
    bytes: collate_str_fn,
}


def collate(batch, *, collate_fn_map=None):
    """Collates ``batch`` (a list of samples of one structure) with the per-type functions of
    ``collate_fn_map`` (exact type first, then the first key ``batch[0]`` is an instance of);
    containers are collated field by field."""
    elem = batch[0]
    elem_type = type(elem)
    if collate_fn_map is not None:
        if elem_type in collate_fn_map:
            return collate_fn_map[elem_type](batch, collate_fn_map=collate_fn_map)
        for collate_type, fn in collate_fn_map.items():
            if isinstance(elem, collate_type):
                return fn(batch, collate_fn_map=collate_fn_map)

    if isinstance(elem, collections.abc.Mapping):
        values = {key: collate([d[key] for d in batch], collate_fn_map=collate_fn_map)
                  for key in elem}
        return _rebuild_mapping(elem, values)
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return elem_type(*(collate(samples, collate_fn_map=collate_fn_map)
                           for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(other) != size for other in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        # each column is a tuple, as in torch (a column of strings stays a tuple)
        columns = [collate(samples, collate_fn_map=collate_fn_map) for samples in zip(*batch)]
        if isinstance(elem, tuple):
            return columns  # torch returns a list for tuples
        return _rebuild_sequence(elem, columns)
    raise TypeError(_ERR_FORMAT.format(elem_type))


def default_collate(batch):
    """Merges a list of samples into a batch: tensors and numpy arrays are stacked along a new
    first dimension, ints become an int64 tensor and floats a float64 tensor, strings stay a
    list, and dicts, namedtuples, tuples and lists are collated field by field.

    >>> default_collate([(0, 1.5), (2, 3.5)])
    [tensor([0, 2]), tensor([1.5000, 3.5000], dtype=torch.float64)]
    >>> default_collate([{"a": 0}, {"a": 100}])
    {'a': tensor([  0, 100])}
    """
    return collate(batch, collate_fn_map=default_collate_fn_map)
