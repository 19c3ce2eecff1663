"""One rank of the data-parallel tests (tests/test_distributed.py starts one process per rank,
with torchrun's environment: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).

    python ddp_worker.py SCENARIO OUT_DIR

writes OUT_DIR/rank{R}.npz with what the test checks.
"""

import contextlib
import sys

import ferrotorch as ft
import ferrotorch.distributed as dist
import numpy as np
from ferrotorch.nn.parallel import DistributedDataParallel as DDP
from ferrotorch.utils.data import DistributedSampler


def collectives(rank, world):
    out = {}
    # A contiguous tensor crosses to torch without a copy; the write bumps its version.
    t = ft.arange(6, dtype=ft.float32) + rank
    v0 = t._version
    ptr = t.data_ptr()
    dist.all_reduce(t)
    out["sum"] = t.numpy()
    out["sum_version_bumped"] = np.array(t._version > v0)
    out["sum_same_memory"] = np.array(t.data_ptr() == ptr)
    # A transposed view goes through a staging copy and is written back through the view.
    base = (ft.arange(12, dtype=ft.float64).reshape(3, 4) * (rank + 1))
    view = base.t()
    dist.all_reduce(view, op=dist.ReduceOp.MAX)
    out["max_base"] = base.numpy()
    # Integer and bfloat16 tensors.
    i = ft.tensor([rank, 10 * rank, -rank], dtype=ft.int64)
    dist.all_reduce(i, op=dist.ReduceOp.MIN)
    out["min_int"] = i.numpy()
    b = ft.tensor([1.5, -2.0, 0.25], dtype=ft.bfloat16) * (rank + 1)
    dist.all_reduce(b)
    out["sum_bf16"] = b.float().numpy()
    # broadcast from the last rank, asynchronously.
    x = ft.full((2, 3), float(rank))
    work = dist.broadcast(x, src=world - 1, async_op=True)
    work.wait()
    out["broadcast"] = x.numpy()
    gathered = [ft.zeros(3) for _ in range(world)]
    dist.all_gather(gathered, ft.full((3,), float(rank * 2)))
    out["all_gather"] = np.stack([g.numpy() for g in gathered])
    objs = [None]
    if rank == 0:
        objs = [{"config": "tiny", "steps": 3}]
    dist.broadcast_object_list(objs, src=0)
    out["object_steps"] = np.array(objs[0]["steps"])
    names = [None] * world
    dist.all_gather_object(names, f"rank-{rank}")
    out["object_names"] = np.array(names)
    dist.barrier()
    return out


class Net(ft.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = ft.nn.Linear(6, 8)
        self.fc2 = ft.nn.Linear(8, 3)
        # Used only for the rows of the first half of the ranks: unused on the others.
        self.extra = ft.nn.Linear(6, 3)

    def forward(self, x, first_half):
        y = self.fc2(ft.nn.functional.gelu(self.fc1(x)))
        if first_half:
            y = y + self.extra(x)
        return y


def data():
    g = ft.Generator()
    g.manual_seed(1)
    x = ft.randn(16, 6, generator=g)
    y = ft.randn(16, 3, generator=g)
    return x, y


# (micro-batches per optimizer step) for each step of the run.
SCHEDULE = [1, 2, 1, 1]


def train(rank, world):
    ft.manual_seed(0)
    net = Net()
    init = {k: v.detach().clone().numpy() for k, v in net.state_dict().items()}
    if rank != 0:  # DDP must start every rank from rank 0's weights
        with ft.no_grad():
            for p in net.parameters():
                p.add_(1.0)
    model = DDP(net, bucket_cap_mb=100 / 2**20)  # ~100-byte buckets: several of them
    n_buckets = len(model.reducer.buckets)
    opt = ft.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.1)
    x, y = data()
    per_rank = x.shape[0] // world
    losses = []
    for accum in SCHEDULE:
        micro = x.shape[0] // accum
        for m in range(accum):
            # This rank's share of the micro-batch, DistributedSampler-style (rows r::world).
            share = list(DistributedSampler(range(micro), world, rank, shuffle=False))
            idx = ft.tensor([m * micro + i for i in share])
            ctx = model.no_sync() if m < accum - 1 else contextlib.nullcontext()
            with ctx:
                out = model(x[idx], rank < world // 2)
                loss = ft.nn.functional.mse_loss(out, y[idx]) / accum
                loss.backward()
            losses.append(loss.item())
        opt.step()
        opt.zero_grad()
    result = {f"init.{k}": v for k, v in init.items()}
    result.update({f"final.{k}": v.detach().numpy() for k, v in net.state_dict().items()})
    result["n_buckets"] = np.array(n_buckets)
    result["per_rank"] = np.array(per_rank)
    result["state_keys"] = np.array(list(model.state_dict().keys()))
    return result


def main():
    scenario, out_dir = sys.argv[1], sys.argv[2]
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        out = {"collectives": collectives, "train": train}[scenario](rank, world)
    finally:
        dist.destroy_process_group()
    np.savez(f"{out_dir}/rank{rank}.npz", **out)


if __name__ == "__main__":
    main()
