"""``DistributedDataParallel``: one model replica per process, gradients averaged across them.

How it works, in the order things happen:

1. At construction, rank 0's parameters and buffers are broadcast so every replica starts equal.
   The parameters are grouped into buckets of about ``bucket_cap_mb``, in reverse order of
   registration, because backward produces the last layers' gradients first.
2. Each forward in grad mode arms the reducer (inside ``no_sync()`` it stays off, so gradients
   accumulate locally).
3. During backward, a post-accumulate-grad hook on every parameter counts the gradients that are
   final. A full bucket is flattened into one buffer, divided by the world size and handed to an
   asynchronous ``all_reduce``, which runs while backward goes on with the earlier layers.
   Buckets are launched strictly in order, so every rank issues the same collectives in the same
   order whatever order its gradients arrive in.
4. When backward ends (a callback queued on the autograd engine), the buckets still waiting
   (parameters that got no gradient on this rank count as zeros) are launched, every reduction is
   waited for, and each parameter's ``.grad`` becomes its slice of the averaged bucket.

Every rank then holds the same averaged gradients, and the same optimizer step keeps the
replicas equal.
"""

import contextlib
import weakref

import ferrotorch as _ft
from ferrotorch import _C
from ferrotorch import distributed as dist
from ferrotorch.nn.module import Module

__all__ = ["DistributedDataParallel"]


class _Bucket:
    __slots__ = ("params", "dtype", "ready", "flat", "work")

    def __init__(self, dtype):
        self.params = []
        self.dtype = dtype
        self.ready = set()
        self.flat = None
        self.work = None


class _Reducer:
    """Averages the parameters' gradients across ranks, bucket by bucket, during backward."""

    def __init__(self, params, bucket_cap_bytes, group, world_size):
        self.group = group
        self.world_size = world_size
        self.buckets = []
        for p in reversed(params):
            b = self.buckets[-1] if self.buckets else None
            size = p.numel() * p.element_size()
            if (b is None or b.dtype != p.dtype
                    or sum(q.numel() * q.element_size() for q in b.params) + size
                    > bucket_cap_bytes and b.params):
                b = _Bucket(p.dtype)
                self.buckets.append(b)
            b.params.append(p)
        bucket_of = {id(p): b for b in self.buckets for p in b.params}
        self.armed = False
        self.finishing = False
        self.next_bucket = 0
        # The hooks hold the reducer weakly: a hook lives in the parameter, beyond the reach of
        # Python's cycle collector, and must not keep the reducer (which holds the parameters).
        # Each hook knows its parameter's bucket (the tensor it is called with is a new handle).
        ref = weakref.ref(self)

        def make_hook(bucket, index):
            def hook(_):
                r = ref()
                if r is not None:
                    r.grad_ready(bucket, index)
            return hook

        self.handles = [p.register_post_accumulate_grad_hook(make_hook(bucket_of[id(p)], i))
                        for i, p in enumerate(params)]

    def arm(self):
        for b in self.buckets:
            b.ready.clear()
            b.flat = b.work = None
        self.next_bucket = 0
        self.finishing = False
        self.armed = True

    def grad_ready(self, b, index):
        if not self.armed:
            return
        if not self.finishing:
            _C._queue_backward_callback(self.finish)
            self.finishing = True
        b.ready.add(index)
        while (self.next_bucket < len(self.buckets)
               and len(self.buckets[self.next_bucket].ready)
               == len(self.buckets[self.next_bucket].params)):
            self.launch(self.buckets[self.next_bucket])
            self.next_bucket += 1

    def launch(self, b):
        with _ft.no_grad():
            parts = [(p.grad if p.grad is not None else _ft.zeros_like(p)).reshape(-1)
                     for p in b.params]
            b.flat = _ft.cat(parts) if len(parts) > 1 else parts[0].clone()
            b.flat.div_(self.world_size)
        b.work = dist.all_reduce(b.flat, group=self.group, async_op=True)

    def finish(self):
        """End of backward: launch what is left, wait, and hand out the averaged gradients."""
        self.armed = False
        while self.next_bucket < len(self.buckets):
            self.launch(self.buckets[self.next_bucket])
            self.next_bucket += 1
        for b in self.buckets:
            b.work.wait()
            offset = 0
            for p in b.params:
                n = p.numel()
                p.grad = b.flat[offset:offset + n].view(p.shape)
                offset += n
            b.flat = b.work = None

    def remove(self):
        for h in self.handles:
            h.remove()


def _sync_from_rank0(tensors, group):
    """Broadcasts rank 0's values of ``tensors`` (coalesced per dtype) into every rank's."""
    by_dtype = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    with _ft.no_grad():
        for ts in by_dtype.values():
            flat = _ft.cat([t.detach().reshape(-1) for t in ts])
            dist.broadcast(flat, src=0, group=group)
            offset = 0
            for t in ts:
                n = t.numel()
                t.copy_(flat[offset:offset + n].view(t.shape))
                offset += n


class DistributedDataParallel(Module):
    """Wraps ``module`` for data-parallel training: each process runs it on its own part of
    the batch, and backward leaves every rank with the gradients averaged over all ranks.

    Arguments are torch's. On ferrotorch's CPU tensors ``device_ids`` and ``output_device``
    must be None; ``gradient_as_bucket_view`` and ``static_graph`` are accepted (gradients are
    always views of the reduced bucket), and parameters a rank did not use count as zero
    gradients, so ``find_unused_parameters`` is never needed.

    >>> import ferrotorch as torch, ferrotorch.distributed as dist  # doctest: +SKIP
    >>> dist.init_process_group("gloo")                              # doctest: +SKIP
    >>> model = torch.nn.parallel.DistributedDataParallel(net)       # doctest: +SKIP
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 process_group=None, bucket_cap_mb=None, find_unused_parameters=False,
                 check_reduction=False, gradient_as_bucket_view=False, static_graph=False):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected an nn.Module, got "
                            f"{type(module).__name__}")
        if device_ids not in (None, []) or output_device is not None:
            raise ValueError(
                "DistributedDataParallel device_ids and output_device arguments only work with "
                f"single-device/multiple-device GPU modules; this module is on the CPU (got "
                f"device_ids={device_ids}, output_device={output_device})")
        if bucket_cap_mb is not None and not bucket_cap_mb > 0:
            raise ValueError(f"bucket_cap_mb must be positive, got {bucket_cap_mb}")
        dist._require_init("DistributedDataParallel")
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise RuntimeError(
                "DistributedDataParallel is not needed when a module doesn't have any parameter "
                "that requires a gradient.")
        self.module = module
        self.dim = dim
        self.broadcast_buffers = broadcast_buffers
        self.process_group = process_group
        self.find_unused_parameters = find_unused_parameters
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.static_graph = static_graph
        self.require_backward_grad_sync = True
        self.bucket_bytes_cap = int((25 if bucket_cap_mb is None else bucket_cap_mb) * 2**20)
        _sync_from_rank0(list(module.parameters()) + list(module.buffers()), process_group)
        self.reducer = _Reducer(params, self.bucket_bytes_cap, process_group,
                                dist.get_world_size(process_group))

    def forward(self, *inputs, **kwargs):
        if self.broadcast_buffers:
            buffers = list(self.module.buffers())
            if buffers:
                _sync_from_rank0(buffers, self.process_group)
        if _ft.is_grad_enabled() and self.require_backward_grad_sync:
            self.reducer.arm()
        return self.module(*inputs, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Inside, backward only accumulates local gradients; the first backward after it
        averages the accumulated gradients across ranks."""
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old
