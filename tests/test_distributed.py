"""Data-parallel training over torch.distributed (gloo on localhost): collectives on ferrotorch
tensors, DistributedDataParallel against a single-process run over the full batch (in
ferrotorch and in torch), DistributedSampler against torch's, and the errors of misuse."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import ferrotorch as ft
import ferrotorch.distributed as dist
import numpy as np
import pytest
import torch
from ferrotorch.nn.parallel import DistributedDataParallel as DDP
from ferrotorch.utils.data import DistributedSampler

WORKER = Path(__file__).parent / "scripts" / "ddp_worker.py"
sys.path.insert(0, str(WORKER.parent))
import ddp_worker  # noqa: E402


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(scenario, tmp_path, world=2, timeout=180):
    """Runs `ddp_worker.py scenario` as `world` processes with torchrun's environment and
    returns each rank's saved arrays."""
    port = str(_free_port())
    procs = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=port, OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen(
            [sys.executable, str(WORKER), scenario, str(tmp_path)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=timeout)
            outputs.append(out)
    finally:
        for p in procs:
            p.kill()
    for rank, (p, out) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"rank {rank} failed:\n{out}"
    return [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(world)]


# *** collectives ***

def test_collectives_on_ferrotorch_tensors(tmp_path):
    world = 2
    ranks = run_ranks("collectives", tmp_path, world)
    for rank, r in enumerate(ranks):
        np.testing.assert_array_equal(
            r["sum"], sum(np.arange(6, dtype=np.float32) + k for k in range(world)))
        assert r["sum_version_bumped"] and r["sum_same_memory"]
        # MAX through a transposed view lands in the base tensor, elementwise.
        np.testing.assert_array_equal(
            r["max_base"], np.arange(12.0).reshape(3, 4) * world)
        np.testing.assert_array_equal(r["min_int"], [0, 0, -(world - 1)])
        ref = sum(torch.tensor([1.5, -2.0, 0.25], dtype=torch.bfloat16) * (k + 1)
                  for k in range(world))
        np.testing.assert_array_equal(r["sum_bf16"], ref.float().numpy())
        np.testing.assert_array_equal(r["broadcast"], np.full((2, 3), world - 1.0))
        np.testing.assert_array_equal(
            r["all_gather"], np.stack([np.full(3, 2.0 * k) for k in range(world)]))
        assert int(r["object_steps"]) == 3
        assert list(r["object_names"]) == [f"rank-{k}" for k in range(world)]


# *** DistributedDataParallel against one process over the full batch ***

def _masked_forward(lib, params, x, world):
    """The full batch through ddp_worker.Net, with `extra` applied to the rows of the ranks
    that use it (row i belongs to rank i % world)."""
    f = lib.nn.functional
    h = f.gelu(f.linear(x, params["fc1.weight"], params["fc1.bias"]))
    y = f.linear(h, params["fc2.weight"], params["fc2.bias"])
    rows = lib.arange(x.shape[0]) % world < world // 2
    extra = f.linear(x, params["extra.weight"], params["extra.bias"])
    return y + extra * rows.reshape(-1, 1).to(x.dtype)


def _single_process(lib, init, world):
    """ddp_worker.train's schedule in one process over the full batch, in ferrotorch or torch."""
    params = {k: lib.tensor(v).requires_grad_() for k, v in init.items()}
    names = list(params)
    opt = lib.optim.AdamW([params[k] for k in names], lr=0.05, weight_decay=0.1)
    x, y = ddp_worker.data()
    x, y = lib.tensor(x.cpu().numpy()), lib.tensor(y.cpu().numpy())
    for accum in ddp_worker.SCHEDULE:
        micro = x.shape[0] // accum
        for m in range(accum):
            rows = slice(m * micro, (m + 1) * micro)
            # Rows of one micro-batch keep their position: row i is rank i % world's.
            out = _masked_forward(lib, params, x[rows], world)
            loss = lib.nn.functional.mse_loss(out, y[rows]) / accum
            loss.backward()
        opt.step()
        opt.zero_grad()
    return {k: params[k].detach().cpu().numpy() for k in names}


def test_ddp_matches_single_process_full_batch(tmp_path):
    world = 2
    ranks = run_ranks("train", tmp_path, world)
    init = {k[len("init."):]: v for k, v in ranks[0].items() if k.startswith("init.")}
    finals = [{k[len("final."):]: v for k, v in r.items() if k.startswith("final.")}
              for r in ranks]
    # Every rank ends with the same weights, bit for bit.
    for k in finals[0]:
        for other in finals[1:]:
            np.testing.assert_array_equal(finals[0][k], other[k], err_msg=k)
    # ... equal to one process over the full batch (gradient averaging vs a mean over the
    # batch differ in rounding only), in ferrotorch and in torch.
    ours = _single_process(ft, init, world)
    ref = _single_process(torch, init, world)
    for k in finals[0]:
        np.testing.assert_allclose(ours[k], ref[k], rtol=1e-5, atol=1e-6, err_msg=k)
        np.testing.assert_allclose(finals[0][k], ref[k], rtol=1e-5, atol=1e-6, err_msg=k)
        # The run moved the weights: the comparison is not between two copies of `init`.
        assert not np.allclose(finals[0][k], init[k]), k
    assert int(ranks[0]["n_buckets"]) > 2
    assert all(k.startswith("module.") for k in ranks[0]["state_keys"])


def test_ddp_in_one_process_is_the_module(tmp_path):
    """world_size 1: DDP changes nothing, and no_sync accumulates like plain backward."""
    store = torch.distributed.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        ft.manual_seed(3)
        net = ft.nn.Linear(4, 2)
        plain = ft.nn.Linear(4, 2)
        plain.load_state_dict(net.state_dict())
        model = DDP(net)
        x = ft.randn(5, 4)
        with model.no_sync():
            model(x).sum().backward()
        model(x * 2).pow(2).sum().backward()
        plain(x).sum().backward()
        plain(x * 2).pow(2).sum().backward()
        for p, q in zip(net.parameters(), plain.parameters()):
            ft.testing.assert_close(p.grad, q.grad)
        with pytest.raises(ValueError, match="device_ids"):
            DDP(ft.nn.Linear(2, 2), device_ids=[0])
        with pytest.raises(RuntimeError, match="doesn't have any parameter"):
            DDP(ft.nn.ReLU())
        with pytest.raises(TypeError, match="nn.Module"):
            DDP(lambda x: x)
        with pytest.raises(RuntimeError, match="twice"):
            dist.init_process_group("gloo", store=store, rank=0, world_size=1)
        with pytest.raises(TypeError, match="ferrotorch Tensor"):
            dist.all_reduce(np.zeros(3))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not (ft.cuda.is_available() and dist.is_nccl_available()),
                    reason="no CUDA GPU with nccl here: the nccl test runs where torch sees one")
def test_nccl_on_one_gpu(tmp_path):
    """nccl (one process: nccl wants a GPU per rank): collectives on ferrotorch CUDA tensors
    cross to torch.distributed, and DDP over nccl gives the plain module's gradients."""
    store = torch.distributed.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("nccl", store=store, rank=0, world_size=1)
    try:
        x = ft.arange(6.0, device="cuda")
        dist.all_reduce(x)
        dist.broadcast(x, src=0)
        np.testing.assert_array_equal(x.cpu().numpy(), np.arange(6.0, dtype=np.float32))
        ft.manual_seed(3)
        net = ft.nn.Linear(4, 2).cuda()
        plain = ft.nn.Linear(4, 2).cuda()
        plain.load_state_dict(net.state_dict())
        model = DDP(net)
        inp = ft.randn(5, 4, device="cuda")
        model(inp).pow(2).sum().backward()
        plain(inp).pow(2).sum().backward()
        for p, q in zip(net.parameters(), plain.parameters()):
            assert p.grad.is_cuda
            ft.testing.assert_close(p.grad, q.grad)
    finally:
        dist.destroy_process_group()


def test_collectives_need_a_process_group():
    assert not dist.is_initialized()
    for call in (dist.get_rank, dist.get_world_size, dist.barrier,
                 lambda: dist.all_reduce(ft.ones(2)), lambda: DDP(ft.nn.Linear(2, 2))):
        with pytest.raises(ValueError, match="init_process_group"):
            call()


# *** DistributedSampler against torch's ***

@pytest.mark.parametrize("n", [0, 1, 5, 7, 16])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_distributed_sampler_matches_torch(n, shuffle, drop_last):
    from torch.utils.data.distributed import DistributedSampler as TorchSampler

    for replicas in (1, 2, 3):
        for rank in range(replicas):
            for epoch in (0, 3):
                ours = DistributedSampler(range(n), replicas, rank, shuffle, 11, drop_last)
                theirs = TorchSampler(range(n), replicas, rank, shuffle, 11, drop_last)
                ours.set_epoch(epoch)
                theirs.set_epoch(epoch)
                assert list(ours) == list(theirs)
                assert len(ours) == len(theirs)


def test_distributed_sampler_errors():
    with pytest.raises(ValueError, match=r"Invalid rank 2, rank should be in the interval \[0, 1\]"):
        DistributedSampler(range(4), num_replicas=2, rank=2)
    with pytest.raises(RuntimeError, match="process group is not initialized"):
        DistributedSampler(range(4))


# *** the GPT-2 runner under torchrun ***

def test_gpt2_runner_under_torchrun_matches_one_process(tmp_path):
    """`torchrun --nproc_per_node 2 -m ferrotorch.gpt2 train` with an odd batch split unevenly
    (1 and 2 rows) and gradient accumulation trains like one process: the same losses and
    weights; rank 0 alone prints and writes the checkpoint."""
    import json

    from ferrotorch.gpt2.checkpoint import load_model
    from test_gpt2_train import CFG, small_text

    config = tmp_path / "cfg.json"
    config.write_text(json.dumps(CFG))
    data = tmp_path / "corpus.txt"
    data.write_text(small_text(300))
    args = ["-m", "ferrotorch.gpt2", "train", "--config", str(config), "--data", str(data),
            "--steps", "4", "--batch-size", "3", "--accum", "2", "--lr", "3e-3",
            "--eval-every", "2", "--eval-batches", "3", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    runs = {}
    for name, launcher in (("one", []),
                           ("two", ["-m", "torch.distributed.run", "--standalone",
                                    "--nproc_per_node", "2"])):
        out = tmp_path / name
        done = subprocess.run([sys.executable, *launcher, *args, "--out", str(out)],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        runs[name] = (done.stdout, out)
    stdout_two = runs["two"][0]
    assert stdout_two.count("done: 4 steps") == 1
    assert "data parallel: 2 processes" in stdout_two
    states = {k: json.loads((out / "checkpoint" / "state.json").read_text())
              for k, (_, out) in runs.items()}
    np.testing.assert_allclose(states["two"]["history"]["step_loss"],
                               states["one"]["history"]["step_loss"], rtol=1e-5)
    np.testing.assert_allclose(states["two"]["history"]["val_loss"],
                               states["one"]["history"]["val_loss"], rtol=1e-5)
    one, _ = load_model(runs["one"][1])
    two, _ = load_model(runs["two"][1])
    start = ft.gpt2.GPTModel(CFG)
    for (k, a), (_, b) in zip(one.state_dict().items(), two.state_dict().items()):
        np.testing.assert_allclose(b.cpu().numpy(), a.cpu().numpy(), rtol=1e-4, atol=1e-5, err_msg=k)
    assert any(not np.allclose(a.cpu().numpy(), b.cpu().numpy())
               for a, b in zip(one.state_dict().values(), start.state_dict().values()))
