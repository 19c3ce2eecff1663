"""``ferrotorch.distributed``: collectives between processes, carried by ``torch.distributed``.

ferrotorch does not reimplement process groups: torch's gloo (CPU) and nccl (GPU) backends are
proven engines. This module gives them ferrotorch tensors: a contiguous CPU tensor crosses to
torch as a view of the same memory (no copy), the collective writes into it, and autograd's
version counter records the write. Other tensors (strided views, bfloat16) go through a
contiguous staging copy that is written back.

The names and signatures are torch's, so scripts launched with ``torchrun`` work unchanged::

    import ferrotorch as torch
    import ferrotorch.distributed as dist
    dist.init_process_group("gloo")          # env:// rendezvous, as torchrun sets it
    t = torch.ones(3) * dist.get_rank()
    dist.all_reduce(t)                        # every rank now holds the sum
"""

import pickle
from datetime import timedelta

from ferrotorch._interop import from_torch, real_torch, to_torch

__all__ = [
    "ReduceOp",
    "Work",
    "all_gather",
    "all_gather_object",
    "all_reduce",
    "barrier",
    "broadcast",
    "broadcast_object_list",
    "destroy_process_group",
    "get_backend",
    "get_rank",
    "get_world_size",
    "init_process_group",
    "is_available",
    "is_gloo_available",
    "is_initialized",
    "is_nccl_available",
]


def _dist():
    return real_torch().distributed


class ReduceOp:
    """How ``all_reduce`` combines the ranks' values (torch's ``ReduceOp`` members)."""

    SUM = "sum"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    AVG = "avg"

    _ALL = (SUM, PRODUCT, MIN, MAX, AVG)


def _torch_op(op):
    dist = _dist()
    if isinstance(op, dist.ReduceOp) or type(op).__name__ == "RedOpType":
        return op
    name = str(op).lower()
    if name not in ReduceOp._ALL:
        raise ValueError(f"unknown reduce op {op!r}; expected one of ReduceOp.SUM, PRODUCT, MIN, "
                         "MAX, AVG")
    return getattr(dist.ReduceOp, name.upper())


# *** availability and process groups ***

def is_available():
    """Whether collectives can run here: torch is installed with its distributed package."""
    try:
        return _dist().is_available()
    except ImportError:
        return False


def is_gloo_available():
    return is_available() and _dist().is_gloo_available()


def is_nccl_available():
    return is_available() and _dist().is_nccl_available()


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1,
                       store=None, group_name="", pg_options=None, device_id=None):
    """Joins (or creates) the default process group; arguments as in torch.

    ``backend`` defaults to ``"gloo"``, the backend for ferrotorch's CPU tensors. With no
    ``init_method`` and no ``store``, rendezvous is ``env://``: ``MASTER_ADDR``,
    ``MASTER_PORT``, ``RANK`` and ``WORLD_SIZE`` from the environment (what torchrun sets).
    """
    dist = _dist()
    if dist.is_initialized():
        raise RuntimeError("trying to initialize the default process group twice "
                           f"(this process is already rank {dist.get_rank()} of "
                           f"{dist.get_world_size()})")
    kwargs = {"backend": backend or "gloo", "world_size": world_size, "rank": rank,
              "group_name": group_name}
    if init_method is not None:
        kwargs["init_method"] = init_method
    if store is not None:
        kwargs["store"] = store
    if timeout is not None:
        kwargs["timeout"] = timeout if isinstance(timeout, timedelta) else timedelta(
            seconds=float(timeout))
    if pg_options is not None:
        kwargs["pg_options"] = pg_options
    if device_id is not None:
        kwargs["device_id"] = device_id
    dist.init_process_group(**kwargs)


def destroy_process_group(group=None):
    """Leaves the process group (the default one when ``group`` is None)."""
    _dist().destroy_process_group(group)


def is_initialized():
    """Whether this process has joined a default process group."""
    return is_available() and _dist().is_initialized()


def _require_init(what):
    if not is_initialized():
        raise ValueError(
            f"{what}: Default process group has not been initialized, please make sure to call "
            "init_process_group.")


def get_rank(group=None):
    """This process's rank in ``group`` (the default group when None)."""
    _require_init("get_rank")
    return _dist().get_rank(group)


def get_world_size(group=None):
    """The number of processes in ``group`` (the default group when None)."""
    _require_init("get_world_size")
    return _dist().get_world_size(group)


def get_backend(group=None):
    _require_init("get_backend")
    return _dist().get_backend(group)


def barrier(group=None, async_op=False):
    """Waits until every rank of ``group`` has reached this call."""
    _require_init("barrier")
    work = _dist().barrier(group=group, async_op=async_op)
    return Work(work) if async_op else None


# *** tensors crossing to torch ***

class _Crossing:
    """A torch tensor standing for a ferrotorch tensor during one collective: the same memory
    when the tensor is contiguous and numpy can carry its dtype, else a staging copy that
    ``finish`` writes back."""

    def __init__(self, t, what):
        from ferrotorch import Tensor, bfloat16

        if not isinstance(t, Tensor):
            raise TypeError(f"{what}: expected a ferrotorch Tensor, got {type(t).__name__}")
        self.t = t
        view = t._torch_view()
        if view is not None:  # a torch-backend device: its own torch tensor, any layout
            self.shared, self.torch = True, view
            return
        self.shared = t.is_contiguous() and t.dtype != bfloat16
        src = t.detach() if self.shared else t.detach().contiguous()
        self.torch = to_torch(src)

    def finish(self):
        """After the collective wrote into ``self.torch``: make the write visible."""
        if self.shared:
            self.t._bump_version()
        else:
            import ferrotorch

            with ferrotorch.no_grad():
                self.t.copy_(from_torch(self.torch).to(self.t.dtype))


class Work:
    """What an ``async_op=True`` collective returns: ``wait()`` blocks until it has finished
    and its result is in the ferrotorch tensor(s)."""

    def __init__(self, work, finish=None):
        self._work = work
        self._finish = finish

    def wait(self, timeout=None):
        if timeout is None:
            self._work.wait()
        else:
            if not isinstance(timeout, timedelta):
                timeout = timedelta(seconds=timeout)
            self._work.wait(timeout)
        finish, self._finish = self._finish, None
        if finish is not None:
            finish()
        return True

    def is_completed(self):
        return self._work.is_completed()


def _run(crossings, call, async_op):
    def finish():
        for c in crossings:
            c.finish()

    work = call()
    if async_op:
        return Work(work, finish)
    finish()
    return None


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Combines ``tensor`` across all ranks in place (sum by default)."""
    _require_init("all_reduce")
    c = _Crossing(tensor, "all_reduce")
    top = _torch_op(op)
    return _run([c], lambda: _dist().all_reduce(
        c.torch, op=top, group=group, async_op=async_op), async_op)


def broadcast(tensor, src, group=None, async_op=False):
    """Copies rank ``src``'s ``tensor`` into every other rank's ``tensor`` in place."""
    _require_init("broadcast")
    c = _Crossing(tensor, "broadcast")
    return _run([c], lambda: _dist().broadcast(
        c.torch, src=src, group=group, async_op=async_op), async_op)


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """Fills ``tensor_list`` (one tensor per rank) with every rank's ``tensor``."""
    _require_init("all_gather")
    outs = [_Crossing(t, "all_gather") for t in tensor_list]
    c = _Crossing(tensor, "all_gather")
    return _run(outs, lambda: _dist().all_gather(
        [o.torch for o in outs], c.torch, group=group, async_op=async_op), async_op)


def broadcast_object_list(object_list, src=0, group=None, device=None):
    """Replaces ``object_list``'s items on every rank with rank ``src``'s (picklable objects)."""
    _require_init("broadcast_object_list")
    _dist().broadcast_object_list(object_list, src=src, group=group)


def all_gather_object(object_list, obj, group=None):
    """Fills ``object_list`` with every rank's picklable ``obj``."""
    _require_init("all_gather_object")
    pickle.dumps(obj)  # fail here, with the object's own error, rather than inside gloo
    _dist().all_gather_object(object_list, obj, group=group)
