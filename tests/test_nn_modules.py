"""Differential tests of ``ferrotorch.nn`` modules against ``torch.nn``.

Every architecture is written once as a function of the namespace ``M`` (torch or ferrotorch)
and built on both sides; torch's weights are copied into ours, then outputs, input gradients
and parameter gradients are compared. Registration, state dicts (including torch's exact
error texts), hooks, modes, dtype conversion and reprs are compared with torch's too.
"""

import copy
import warnings
from collections import OrderedDict

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import assert_same as _assert_same
from conftest import cuda_differs, to_ft

torch.set_num_threads(1)

FLOATS = ["float32", "float64"]
FT_DT = {"float32": ft.float32, "float64": ft.float64}
TH_DT = {"float32": torch.float32, "float64": torch.float64}
# layer outputs/gradients are sums of products: a little more room than the elementwise table
TOL = {"float32": (2e-5, 2e-5), "float64": (1e-10, 1e-10)}


def assert_same(ours, theirs, dtype="float32"):
    r, a = TOL[dtype]
    if isinstance(ours, ft.Tensor):
        ours = ours.detach()
    _assert_same(ours, theirs.detach(), r, a)


def ft_state(module):
    """torch module's state dict with ferrotorch tensors."""
    return OrderedDict((k, to_ft(v)) for k, v in module.state_dict().items())


def torch_state(module):
    return OrderedDict((k, torch.from_numpy(np.array(v.cpu().numpy()))) for k, v in
                       module.state_dict().items())


def twin(build, dtype="float32", seed=0):
    """(ours, torch's) built by build(M) with torch's weights copied into ours (torch seeded,
    so a test's numbers do not depend on which tests ran before it)."""
    torch.manual_seed(seed)
    theirs = build(torch).to(TH_DT[dtype])
    ours = build(ft).to(FT_DT[dtype])
    ours.load_state_dict(ft_state(theirs))
    return ours, theirs


def leaf_pair(shape, dtype, seed=0, low=-2.0, high=2.0):
    values = np.random.default_rng(seed).uniform(low, high, size=shape)
    theirs = torch.tensor(values, dtype=TH_DT[dtype], requires_grad=True)
    ours = ft.tensor(values, dtype=FT_DT[dtype], requires_grad=True)
    return ours, theirs


def check_layer(build, shape, dtype, transposed=False, seed=0):
    """Forward, input gradient and every parameter gradient of build(M) equal torch's."""
    ours, theirs = twin(build, dtype)
    leaf_shape = shape[:-2] + (shape[-1], shape[-2]) if transposed else shape
    x, tx = leaf_pair(leaf_shape, dtype, seed)
    xin, txin = (x.transpose(-1, -2), tx.transpose(-1, -2)) if transposed else (x, tx)
    out, tout = ours(xin), theirs(txin)
    assert_same(out, tout, dtype)
    g = np.random.default_rng(seed + 1).standard_normal(tuple(tout.shape))
    out.backward(ft.tensor(g, dtype=FT_DT[dtype]))
    tout.backward(torch.tensor(g, dtype=TH_DT[dtype]))
    assert_same(x.grad, tx.grad, dtype)
    check_param_grads(ours, theirs, dtype)


def check_param_grads(ours, theirs, dtype):
    named = dict(theirs.named_parameters())
    assert [n for n, _ in ours.named_parameters()] == list(named)
    for name, p in ours.named_parameters():
        tp = named[name]
        if tp.grad is None:
            assert p.grad is None, name
        else:
            assert p.grad is not None, f"{name} has no grad"
            assert_same(p.grad, tp.grad, dtype)


# --------------------------------------------------------------------------------------------
# architectures, written once for both libraries
# --------------------------------------------------------------------------------------------


def mlp(M):
    return M.nn.Sequential(M.nn.Linear(6, 5), M.nn.ReLU(), M.nn.Linear(5, 3), M.nn.Tanh())


def make_net_class(M):
    class Net(M.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = M.nn.Embedding(11, 6, padding_idx=0)
            self.blocks = M.nn.ModuleList([M.nn.Linear(6, 6) for _ in range(3)])
            self.heads = M.nn.ModuleDict({"a": M.nn.Linear(6, 2), "b": M.nn.Identity()})
            self.norm = M.nn.LayerNorm(6)
            self.scale = M.nn.Parameter(M.ones(6))
            self.register_buffer("steps", M.zeros((), dtype=M.int64))
            self.register_buffer("scratch", M.zeros(2), persistent=False)

        def forward(self, idx):
            x = self.emb(idx)
            for blk in self.blocks:
                x = x + M.nn.functional.gelu(blk(x))
            return self.heads["a"](self.norm(x) * self.scale)

    return Net


def net(M):
    return make_net_class(M)()


REPR_ARCHS = {
    "mlp": mlp,
    "net": net,
    "ordered": lambda M: M.nn.Sequential(OrderedDict([
        ("fc", M.nn.Linear(3, 4, bias=False)), ("act", M.nn.GELU(approximate="tanh")),
        ("drop", M.nn.Dropout(0.1)), ("out", M.nn.Sequential(M.nn.Flatten(0), M.nn.Sigmoid())),
    ])),
    "layers": lambda M: M.nn.Sequential(
        M.nn.Embedding(10, 4, padding_idx=-1), M.nn.LayerNorm((2, 4), eps=1e-6, bias=False),
        M.nn.LayerNorm(4, elementwise_affine=False), M.nn.SiLU(), M.nn.ReLU(inplace=True),
        M.nn.Softmax(dim=-1), M.nn.LogSoftmax(1), M.nn.Unflatten(1, (2, 2)),
        M.nn.Dropout(p=0.25, inplace=True), M.nn.Identity(), M.nn.Embedding(5, 2, max_norm=1.0)),
    "mha": lambda M: M.nn.MultiheadAttention(8, 2, kdim=4, vdim=6, add_bias_kv=True),
    "mha_plain": lambda M: M.nn.MultiheadAttention(8, 4, batch_first=True, bias=False),
    "modulelist": lambda M: M.nn.ModuleList(
        [M.nn.Linear(2, 2), M.nn.Linear(2, 2), M.nn.ReLU(), M.nn.Linear(2, 2)]),
    "empty": lambda M: M.nn.ModuleList(),
    "moduledict": lambda M: M.nn.ModuleDict([("x", M.nn.Tanh()), ("y", mlp(M))]),
}


@pytest.mark.parametrize("arch", list(REPR_ARCHS))
def test_repr_matches_torch(arch):
    assert repr(REPR_ARCHS[arch](ft)) == repr(REPR_ARCHS[arch](torch))


# --------------------------------------------------------------------------------------------
# registration and iteration
# --------------------------------------------------------------------------------------------


def test_registration_matches_torch():
    ours, theirs = net(ft), net(torch)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert len(list(ours.parameters())) == len(list(theirs.parameters()))
    assert len(list(ours.modules())) == len(list(theirs.modules()))
    assert [n for n, _ in ours.named_parameters(prefix="m", recurse=False)] == \
        [n for n, _ in theirs.named_parameters(prefix="m", recurse=False)]
    assert isinstance(ours.scale, ft.nn.Parameter) and isinstance(ours.scale, ft.Tensor)
    assert ours.get_submodule("blocks.1") is ours.blocks[1]
    assert ours.get_submodule("") is ours
    assert ours.get_parameter("heads.a.bias") is ours.heads["a"].bias
    assert ours.get_buffer("steps") is ours.steps
    assert "emb" in dir(ours) and "scale" in dir(ours) and "steps" in dir(ours)
    for sd in (ours.state_dict(), theirs.state_dict()):
        assert "scratch" not in sd


def test_shared_parameters_and_modules_dedup_like_torch():
    def build(M):
        lin = M.nn.Linear(3, 3)
        seq = M.nn.Sequential(lin, M.nn.ReLU(), lin)
        seq.extra = M.nn.Linear(3, 1)
        seq.extra.weight = seq[0].weight
        return seq

    ours, theirs = build(ft), build(torch)
    for kw in ({}, {"remove_duplicate": False}):
        assert [n for n, _ in ours.named_parameters(**kw)] == \
            [n for n, _ in theirs.named_parameters(**kw)]
        assert [n for n, _ in ours.named_modules(**kw)] == \
            [n for n, _ in theirs.named_modules(**kw)]
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_attribute_routing_and_deletion():
    ours, theirs = net(ft), net(torch)
    for m, M in ((ours, ft), (theirs, torch)):
        m.scale = None  # a registered parameter may be set to None
        assert "scale" in m._parameters and m._parameters["scale"] is None
        m.steps = M.ones((), dtype=M.int64)
        assert "steps" in m._buffers
        m.norm = M.nn.Identity()
        assert isinstance(m._modules["norm"], M.nn.Identity)
        m.plain = 3
        assert "plain" in m.__dict__
        del m.emb
        assert "emb" not in m._modules
        del m.steps
        assert "steps" not in m._buffers
    assert list(ours.state_dict()) == list(theirs.state_dict())
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'emb'"):
        ours.emb


def test_attribute_lookup_sees_each_instance_own_registries():
    # the class-level fast path for registered names must answer like torch's __getattr__
    for M in (ft, torch):
        with_bias, without = M.nn.Linear(2, 3), M.nn.Linear(2, 3, bias=False)
        assert without.bias is None and with_bias.bias is with_bias._parameters["bias"]
        relu = M.nn.ReLU()
        with pytest.raises(AttributeError, match="'ReLU' object has no attribute 'weight'"):
            relu.weight
        assert not hasattr(M.nn.Linear, "weight") and not hasattr(relu, "weight")
        p = M.nn.Parameter(M.ones(3, 2))
        with_bias._parameters["weight"] = p  # a direct registry write is seen at once
        assert with_bias.weight is p
        del with_bias.weight
        with pytest.raises(AttributeError, match="'Linear' object has no attribute 'weight'"):
            with_bias.weight
        object.__setattr__(with_bias, "weight", 5)  # an instance attribute wins
        assert with_bias.weight == 5
        buf = M.zeros(1)
        without.register_buffer("weight_scale", buf)
        assert without.weight_scale is buf
        seq = M.nn.Sequential(relu)
        assert getattr(seq, "0") is relu
        names = dir(M.nn.Linear(2, 3))
        assert names.count("weight") == 1 and names.count("bias") == 1
        assert "weight_scale" not in dir(M.nn.Linear(2, 3))


def _error(fn):
    with pytest.raises(Exception) as info:
        fn()
    return type(info.value), str(info.value)


@pytest.mark.parametrize("case", [
    "tensor_as_param", "int_as_param", "int_buffer", "existing_buffer_name", "dotted_param",
    "dotted_module", "not_module", "missing_attr", "plain_tensor_param", "int_as_module",
    "submodule_missing", "submodule_not_module", "to_int_dtype",
])
def test_registration_errors_match_torch(case):
    def run(M):
        m = make_net_class(M)()
        cases = {
            "tensor_as_param": lambda: setattr(m, "scale", M.zeros(2)),
            "int_as_param": lambda: setattr(m, "scale", 3),
            "int_buffer": lambda: m.register_buffer("x", 3),
            "existing_buffer_name": lambda: m.register_buffer("scale", M.zeros(1)),
            "dotted_param": lambda: m.register_parameter("a.b", None),
            "dotted_module": lambda: m.add_module("a.b", None),
            "not_module": lambda: m.add_module("c", 3),
            "missing_attr": lambda: m.nothing,
            "plain_tensor_param": lambda: m.register_parameter("z", M.zeros(1)),
            "int_as_module": lambda: setattr(m, "norm", 3),
            "submodule_missing": lambda: m.get_submodule("blocks.7"),
            "submodule_not_module": lambda: m.get_submodule("scale"),
            "to_int_dtype": lambda: m.to(M.int64),
        }
        return _error(cases[case])

    assert run(ft) == run(torch)


def test_buffer_marker_routes_like_torch():
    def run(M):
        m = M.nn.Module()
        m.keep = M.nn.Buffer(M.zeros(2))
        m.skip = M.nn.Buffer(M.ones(1), persistent=False)
        m.skip = M.zeros(3)  # reassigning a buffer keeps it non-persistent
        return ([n for n, _ in m.named_buffers()], list(m.state_dict()),
                tuple(m.skip.shape))

    assert run(ft) == run(torch)


def test_deepcopy_gives_an_independent_module():
    ours = mlp(ft)
    twin_ = copy.deepcopy(ours)
    assert repr(twin_) == repr(ours)
    for p, q in zip(ours.parameters(), twin_.parameters()):
        assert isinstance(q, ft.nn.Parameter) and q.requires_grad
        assert p.data_ptr() != q.data_ptr()
        np.testing.assert_array_equal(p.detach().cpu().numpy(), q.detach().cpu().numpy())


def test_parameter_basics():
    data = ft.randn(3, 4)
    p = ft.nn.Parameter(data)
    assert p.requires_grad and p.is_leaf and isinstance(p, ft.Tensor)
    assert p.data_ptr() == data.data_ptr()  # shares storage, like torch
    assert type(p * 2) is ft.Tensor
    assert not ft.nn.Parameter(data, requires_grad=False).requires_grad
    assert ft.nn.Parameter().shape == torch.nn.Parameter().shape
    assert repr(p).startswith("Parameter containing:\ntensor(")
    (p * 2).sum().backward()
    tp = torch.nn.Parameter(torch.tensor(data.cpu().numpy()))
    (tp * 2).sum().backward()
    _assert_same(p.grad, tp.grad)


# --------------------------------------------------------------------------------------------
# state dicts
# --------------------------------------------------------------------------------------------


def test_state_dict_values_are_detached_and_round_trip_with_torch():
    ft.manual_seed(3)
    ours = net(ft)
    sd = ours.state_dict()
    for k, v in sd.items():
        assert not v.requires_grad, k
        assert v.data_ptr() == ours.state_dict(keep_vars=True)[k].data_ptr()
    assert ours.state_dict(keep_vars=True)["scale"] is ours.scale
    # ours -> torch
    theirs = net(torch)
    assert str(theirs.load_state_dict(torch_state(ours))) == "<All keys matched successfully>"
    for (k, v), (tk, tv) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert k == tk
        _assert_same(v, tv, 0, 0)
    # torch -> ours, values copied in place (the Parameter objects stay the same)
    torch.manual_seed(5)
    theirs2 = net(torch)
    ids = [id(p) for p in ours.parameters()]
    result = ours.load_state_dict(ft_state(theirs2))
    assert result == (([], [])) and repr(result) == "<All keys matched successfully>"
    assert ids == [id(p) for p in ours.parameters()]
    for (k, v), tv in zip(ours.state_dict().items(), theirs2.state_dict().values()):
        _assert_same(v, tv, 0, 0)
    assert all(p.requires_grad for p in ours.parameters())


def test_load_state_dict_accepts_torch_tensors():
    ours = net(ft)
    torch.manual_seed(7)
    theirs = net(torch)
    ours.load_state_dict(theirs.state_dict())
    for v, tv in zip(ours.state_dict().values(), theirs.state_dict().values()):
        _assert_same(v, tv, 0, 0)


def _bad_state(M, sd):
    sd = OrderedDict(sd)
    del sd["blocks.1.bias"]
    del sd["norm.weight"]
    sd["blocks.9.weight"] = M.zeros(2)
    sd["unknown"] = M.zeros(1)
    sd["heads.a.weight"] = M.zeros(3, 6)
    return sd


def test_load_state_dict_strict_errors_match_torch():
    ours, theirs = net(ft), net(torch)
    with pytest.raises(RuntimeError) as ti:
        theirs.load_state_dict(_bad_state(torch, theirs.state_dict()))
    with pytest.raises(RuntimeError) as oi:
        ours.load_state_dict(_bad_state(ft, ours.state_dict()))
    assert str(oi.value) == str(ti.value)
    assert "Missing key(s) in state_dict" in str(oi.value)


def test_load_state_dict_non_strict_matches_torch():
    ours, theirs = net(ft), net(torch)
    o_sd = _bad_state(ft, ours.state_dict())
    del o_sd["heads.a.weight"]
    t_sd = _bad_state(torch, theirs.state_dict())
    del t_sd["heads.a.weight"]
    o, t = ours.load_state_dict(o_sd, strict=False), theirs.load_state_dict(t_sd, strict=False)
    assert tuple(o) == tuple(t) and o.missing_keys == t.missing_keys
    assert o.unexpected_keys == t.unexpected_keys
    # size mismatches are errors even when not strict
    o_sd["heads.a.weight"] = ft.zeros(3, 6)
    t_sd["heads.a.weight"] = torch.zeros(3, 6)
    assert _error(lambda: ours.load_state_dict(o_sd, strict=False)) == \
        _error(lambda: theirs.load_state_dict(t_sd, strict=False))
    with pytest.raises(TypeError, match="Expected state_dict to be dict-like"):
        ours.load_state_dict([1, 2])


def test_load_state_dict_assign():
    ours = mlp(ft)
    sd = OrderedDict((k, ft.ones(v.shape, dtype=ft.float64)) for k, v in
                     ours.state_dict().items())
    ours.load_state_dict(sd, assign=True)
    for name, p in ours.named_parameters():
        assert isinstance(p, ft.nn.Parameter) and p.requires_grad and p.dtype == ft.float64
        assert p.data_ptr() == sd[name].data_ptr()


# --------------------------------------------------------------------------------------------
# modes, gradients, hooks, conversion
# --------------------------------------------------------------------------------------------


def test_train_eval_apply_requires_grad():
    ours = net(ft)
    assert ours.training and all(m.training for m in ours.modules())
    assert ours.eval() is ours and not any(m.training for m in ours.modules())
    assert ours.train() is ours and all(m.training for m in ours.modules())
    ours.blocks.train(False)
    assert ours.training and not ours.blocks[0].training
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        ours.train("yes")
    seen = []
    assert ours.apply(lambda m: seen.append(type(m).__name__)) is ours
    theirs_seen = []
    net(torch).apply(lambda m: theirs_seen.append(type(m).__name__))
    assert seen == theirs_seen
    assert ours.requires_grad_(False) is ours
    assert not any(p.requires_grad for p in ours.parameters())


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    ours, theirs = twin(mlp)
    x, tx = leaf_pair((4, 6), "float32")
    ours(x).sum().backward()
    theirs(tx).sum().backward()
    grads = [p.grad for p in ours.parameters()]
    ours.zero_grad(set_to_none=set_to_none)
    theirs.zero_grad(set_to_none=set_to_none)
    for p, g, tp in zip(ours.parameters(), grads, theirs.parameters()):
        if set_to_none:
            assert p.grad is None and tp.grad is None
        else:
            _assert_same(p.grad, tp.grad)
            assert p.grad.data_ptr() == g.data_ptr()  # zeroed in place
    # gradients accumulate again from zero
    ours(x).sum().backward()
    theirs(tx).sum().backward()
    check_param_grads(ours, theirs, "float32")


def test_forward_hooks_match_torch():
    def run(M):
        model = mlp(M)
        model.load_state_dict(ft_state(reference) if M is ft else reference.state_dict())
        calls = []

        def pre(mod, args):
            calls.append(("pre", type(mod).__name__))
            return args[0] * 2  # a bare value replaces the arguments

        def post(mod, args, out):
            calls.append(("post", type(mod).__name__))
            return out + 1

        def kw_pre(mod, args, kwargs):
            calls.append(("kw_pre", len(args), sorted(kwargs)))

        h1 = model[0].register_forward_pre_hook(pre)
        h2 = model.register_forward_hook(post)
        h3 = model[2].register_forward_pre_hook(kw_pre, with_kwargs=True)
        h4 = model[2].register_forward_hook(lambda m, a, o: calls.append("first"), prepend=True)
        x = (ft if M is ft else torch).tensor(values)
        first = model(x)
        for h in (h1, h2, h3):
            h.remove()
        h4.remove()
        second = model(x)
        return first, second, calls

    values = np.random.default_rng(0).uniform(-1, 1, (2, 6)).astype(np.float32)
    reference = mlp(torch)
    o1, o2, ocalls = run(ft)
    t1, t2, tcalls = run(torch)
    assert ocalls == tcalls
    assert_same(o1, t1)
    assert_same(o2, t2)


def test_hook_handle_context_manager():
    m = ft.nn.ReLU()
    with m.register_forward_hook(lambda mod, a, o: o * 0):
        assert float(m(ft.ones(2)).sum()) == 0.0
    assert float(m(ft.ones(2)).sum()) == 2.0


@pytest.mark.parametrize("conv", ["double", "to_dtype", "to_kw", "float", "half", "bfloat16",
                                  "cpu", "to_tensor"])
def test_dtype_conversion_matches_torch(conv):
    def run(M):
        m = net(M)
        params = list(m.parameters())
        calls = {
            "double": lambda: m.double(),
            "to_dtype": lambda: m.to(M.float64),
            "to_kw": lambda: m.to(device="cpu", dtype=M.float64),
            "float": lambda: m.double().float(),
            "half": lambda: m.half(),
            "bfloat16": lambda: m.bfloat16(),
            "cpu": lambda: m.cpu(),
            "to_tensor": lambda: m.to(M.zeros(1, dtype=M.float64)),
        }
        assert calls[conv]() is m
        # the Parameter objects survive (optimizers keep working)
        assert [id(p) for p in m.parameters()] == [id(p) for p in params]
        return ([str(t.dtype) for t in m.state_dict().values()],
                [type(p).__name__ for p in m.parameters()])

    assert run(ft) == run(torch)


def test_to_keeps_values_and_grads():
    ours, theirs = twin(mlp)
    x, tx = leaf_pair((3, 6), "float32")
    ours(x).sum().backward()
    theirs(tx).sum().backward()
    ours.double()
    theirs.double()
    for p, tp in zip(ours.parameters(), theirs.parameters()):
        assert p.requires_grad and p.dtype == ft.float64
        assert_same(p, tp, "float64")
        # the gradients were computed in float32, then converted
        _assert_same(p.grad, tp.grad, *TOL["float32"])


# --------------------------------------------------------------------------------------------
# containers
# --------------------------------------------------------------------------------------------


def test_sequential_operations_match_torch():
    def run(M):
        layers = [M.nn.Linear(i + 1, i + 2) for i in range(5)]
        s = M.nn.Sequential(*layers[:3])
        out = [len(s), s[-1] is layers[2], [type(m).__name__ for m in s]]
        out.append(repr(s[1:]))
        s.append(layers[3])
        s.insert(1, M.nn.ReLU())
        s.extend([M.nn.Tanh(), layers[4]])
        out.append(repr(s))
        del s[0]
        out.append(list(s._modules))
        s[0] = M.nn.Sigmoid()
        out.append(repr(s))
        out.append(repr(s.pop(1)))
        out.append(repr(s + M.nn.Sequential(M.nn.ReLU())))
        out.append(repr(M.nn.Sequential(M.nn.ReLU()) * 2))
        out.append(_error(lambda: s[10]))
        return out

    assert run(ft) == run(torch)


def test_sequential_forward_and_ordered_dict():
    build = REPR_ARCHS["ordered"]
    ours, theirs = twin(build)
    assert list(ours.state_dict()) == ["fc.weight"]
    ours.eval()
    theirs.eval()
    x, tx = leaf_pair((2, 3), "float32")
    assert_same(ours(x), theirs(tx))


def test_modulelist_and_moduledict_match_torch():
    def run(M):
        ml = M.nn.ModuleList([M.nn.ReLU(), M.nn.Tanh()])
        ml.append(M.nn.Linear(1, 1))
        ml.extend([M.nn.Identity()])
        ml.insert(1, M.nn.Sigmoid())
        ml += [M.nn.ReLU()]
        out = [len(ml), [type(m).__name__ for m in ml], repr(ml[1:3]), repr(ml[-1])]
        del ml[0]
        out.append(list(ml._modules))
        ml[0] = M.nn.SiLU()
        out.append(repr(ml))
        out.append(_error(lambda: ml[9]))
        md = M.nn.ModuleDict({"b": M.nn.ReLU(), "a": M.nn.Tanh()})
        md["c"] = M.nn.Identity()
        md.update([("d", M.nn.Sigmoid())])
        out += [list(md), list(md.keys()), "a" in md, len(md), repr(md.pop("a")), repr(md)]
        out.append([k for k, _ in md.items()])
        return out

    assert run(ft) == run(torch)


# --------------------------------------------------------------------------------------------
# layers: forward, input gradient and parameter gradients vs torch
# --------------------------------------------------------------------------------------------

LAYERS = {
    "linear": (lambda M: M.nn.Linear(5, 4), (3, 5)),
    "linear_nobias": (lambda M: M.nn.Linear(5, 4, bias=False), (2, 3, 5)),
    "linear_1d": (lambda M: M.nn.Linear(5, 2), (5,)),
    "layernorm": (lambda M: M.nn.LayerNorm(6), (4, 6)),
    "layernorm_2d": (lambda M: M.nn.LayerNorm((3, 4), eps=1e-3), (2, 3, 4)),
    "layernorm_nobias": (lambda M: M.nn.LayerNorm(4, bias=False), (3, 4)),
    "layernorm_noaffine": (lambda M: M.nn.LayerNorm(4, elementwise_affine=False), (3, 4)),
    "relu": (lambda M: M.nn.ReLU(), (4, 5)),
    "gelu": (lambda M: M.nn.GELU(), (4, 5)),
    "gelu_tanh": (lambda M: M.nn.GELU(approximate="tanh"), (4, 5)),
    "sigmoid": (lambda M: M.nn.Sigmoid(), (4, 5)),
    "tanh": (lambda M: M.nn.Tanh(), (4, 5)),
    "silu": (lambda M: M.nn.SiLU(), (4, 5)),
    "softmax": (lambda M: M.nn.Softmax(dim=-1), (3, 5)),
    "softmax0": (lambda M: M.nn.Softmax(dim=0), (3, 5)),
    "logsoftmax": (lambda M: M.nn.LogSoftmax(dim=1), (3, 5)),
    "flatten": (lambda M: M.nn.Flatten(), (2, 3, 4)),
    "unflatten": (lambda M: M.nn.Unflatten(1, (2, 3)), (4, 6)),
    "identity": (lambda M: M.nn.Identity(3, k=1), (2, 3)),
    "dropout_eval": (lambda M: M.nn.Dropout(0.5).eval(), (4, 5)),
    "dropout_p0": (lambda M: M.nn.Dropout(0.0), (4, 5)),
    "mlp": (mlp, (7, 6)),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_matches_torch(name, dtype):
    build, shape = LAYERS[name]
    check_layer(build, shape, dtype)


@pytest.mark.parametrize("name", ["linear", "layernorm", "gelu", "softmax", "mlp"])
def test_layer_non_contiguous_input(name):
    build, shape = LAYERS[name]
    check_layer(build, shape, "float32", transposed=True)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_matches_torch(dtype, padding_idx):
    ours, theirs = twin(lambda M: M.nn.Embedding(9, 4, padding_idx=padding_idx), dtype)
    idx = np.random.default_rng(0).integers(0, 9, size=(3, 5))
    idx[0, :3] = [2, 8, 2]
    out, tout = ours(ft.tensor(idx)), theirs(torch.tensor(idx))
    assert_same(out, tout, dtype)
    g = np.random.default_rng(1).standard_normal(tuple(tout.shape))
    out.backward(ft.tensor(g, dtype=FT_DT[dtype]))
    tout.backward(torch.tensor(g, dtype=TH_DT[dtype]))
    check_param_grads(ours, theirs, dtype)


def test_embedding_max_norm_matches_torch():
    ours, theirs = twin(lambda M: M.nn.Embedding(6, 3, max_norm=1.0))
    idx = [[0, 2, 2], [5, 1, 0]]
    out, tout = ours(ft.tensor(idx)), theirs(torch.tensor(idx))
    assert_same(out, tout)
    assert_same(ours.weight, theirs.weight)  # the looked-up rows were renormalised in place


def test_embedding_from_pretrained_matches_torch():
    w = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    for freeze in (True, False):
        ours = ft.nn.Embedding.from_pretrained(ft.tensor(w), freeze=freeze, padding_idx=1)
        theirs = torch.nn.Embedding.from_pretrained(torch.tensor(w), freeze=freeze,
                                                    padding_idx=1)
        assert ours.weight.requires_grad == theirs.weight.requires_grad
        assert repr(ours) == repr(theirs)
        idx = [[0, 1, 4]]
        assert_same(ours(ft.tensor(idx)), theirs(torch.tensor(idx)))


@cuda_differs("dropout masks on CUDA come from the GPU's generator, as torch's do, not the CPU's that the reference uses")
def test_dropout_train_matches_torch_under_seed():
    ours, theirs = ft.nn.Dropout(0.3), torch.nn.Dropout(0.3)
    x, tx = leaf_pair((6, 7), "float32")
    ft.manual_seed(11)
    torch.manual_seed(11)
    out, tout = ours(x), theirs(tx)
    assert_same(out, tout)
    out.sum().backward()
    tout.sum().backward()
    assert_same(x.grad, tx.grad)
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        ft.nn.Dropout(1.5)


def test_sequential_gradients_through_custom_module():
    for dtype in FLOATS:
        ours, theirs = twin(net, dtype)
        idx = np.random.default_rng(2).integers(0, 11, size=(2, 4))
        out, tout = ours(ft.tensor(idx)), theirs(torch.tensor(idx))
        assert_same(out, tout, dtype)
        out.pow(2).sum().backward()
        tout.pow(2).sum().backward()
        check_param_grads(ours, theirs, dtype)


# --------------------------------------------------------------------------------------------
# MultiheadAttention
# --------------------------------------------------------------------------------------------

E, H, L, S, N = 8, 2, 4, 5, 3


def _mask(kind, M, shape, seed=0):
    """A mask that never hides a whole row (fully masked rows are NaN in torch too)."""
    g = np.random.default_rng(seed)
    hidden = g.random(shape) < 0.3
    hidden[..., 0] = False
    t = torch.tensor(hidden)
    if kind == "float":
        t = torch.zeros(shape).masked_fill(t, float("-inf")) + torch.tensor(
            g.uniform(-1, 1, shape), dtype=torch.float32)
    return t if M is torch else to_ft(t)


MHA_CASES = {
    "self": dict(),
    "self_batch_first": dict(batch_first=True),
    "cross": dict(cross=True),
    "cross_kv_same": dict(cross="kv"),
    "no_weights": dict(need_weights=False),
    "no_weights_bf": dict(need_weights=False, batch_first=True, cross=True),
    "per_head": dict(average_attn_weights=False),
    "bool_mask": dict(attn_mask="bool"),
    "float_mask": dict(attn_mask="float"),
    "mask_3d": dict(attn_mask="bool3d", cross=True),
    "padding": dict(key_padding_mask="bool", cross=True),
    "padding_float_mask": dict(key_padding_mask="float", attn_mask="float", cross=True),
    "padding_and_mask_no_weights": dict(key_padding_mask="bool", attn_mask="bool",
                                        need_weights=False, cross=True),
    "causal_no_weights": dict(attn_mask="causal", is_causal=True, need_weights=False),
    "causal_weights": dict(attn_mask="causal", is_causal=True),
    "kdim_vdim": dict(kdim=4, vdim=6, cross=True),
    "kdim_vdim_bf_mask": dict(kdim=4, vdim=6, cross=True, batch_first=True,
                              key_padding_mask="bool"),
    "no_bias": dict(bias=False),
    "bias_kv": dict(add_bias_kv=True, cross=True, attn_mask="bool"),
    "zero_attn": dict(add_zero_attn=True, key_padding_mask="bool", cross=True),
    "unbatched": dict(unbatched=True, cross=True, attn_mask="bool"),
    "unbatched_no_weights": dict(unbatched=True, need_weights=False),
}


def _run_mha(M, mha, case, dtype, inputs):
    kw = {}
    q = inputs["q"]
    k, v = {True: (inputs["k"], inputs["v"]), "kv": (inputs["k"], inputs["k"]),
            False: (q, q)}[case.get("cross", False)]
    src = L if not case.get("cross") else S
    if case.get("attn_mask") in ("bool", "float"):
        kw["attn_mask"] = _mask(case["attn_mask"], M, (L, src))
    elif case.get("attn_mask") == "bool3d":
        kw["attn_mask"] = _mask("bool", M, (N * H, L, src))
    elif case.get("attn_mask") == "causal":
        kw["attn_mask"] = M.triu(M.ones(L, L), diagonal=1).bool()
    if "attn_mask" in kw and kw["attn_mask"].is_floating_point():
        kw["attn_mask"] = kw["attn_mask"].to(FT_DT[dtype] if M is ft else TH_DT[dtype])
    if case.get("key_padding_mask"):
        shape = (src,) if case.get("unbatched") else (N, src)
        kpm = _mask(case["key_padding_mask"], M, shape, seed=5)
        if kpm.is_floating_point():
            kpm = kpm.to(FT_DT[dtype] if M is ft else TH_DT[dtype])
        kw["key_padding_mask"] = kpm
    for name in ("need_weights", "average_attn_weights", "is_causal"):
        if name in case:
            kw[name] = case[name]
    return mha(q, k, v, **kw)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case_name", list(MHA_CASES))
def test_multihead_attention_matches_torch(case_name, dtype):
    case = MHA_CASES[case_name]
    ctor = {k: case[k] for k in ("batch_first", "kdim", "vdim", "bias", "add_bias_kv",
                                 "add_zero_attn") if k in case}
    ours, theirs = twin(lambda M: M.nn.MultiheadAttention(E, H, **ctor), dtype)
    ours.eval()
    theirs.eval()
    bf = case.get("batch_first", False)

    def shape(n, e):
        if case.get("unbatched"):
            return (n, e)
        return (N, n, e) if bf else (n, N, e)

    q, tq = leaf_pair(shape(L, E), dtype, seed=1)
    k, tk = leaf_pair(shape(S, ctor.get("kdim", E)), dtype, seed=2)
    v, tv = leaf_pair(shape(S, ctor.get("vdim", E)), dtype, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, w = _run_mha(ft, ours, case, dtype, {"q": q, "k": k, "v": v})
        tout, tw = _run_mha(torch, theirs, case, dtype, {"q": tq, "k": tk, "v": tv})
    assert_same(out, tout, dtype)
    if tw is None:
        assert w is None
    else:
        assert_same(w, tw, dtype)
    g = np.random.default_rng(9).standard_normal(tuple(tout.shape))
    loss = (out * ft.tensor(g, dtype=FT_DT[dtype])).sum()
    tloss = (tout * torch.tensor(g, dtype=TH_DT[dtype])).sum()
    if tw is not None:
        loss = loss + w.sum() * 0.5
        tloss = tloss + tw.sum() * 0.5
    loss.backward()
    tloss.backward()
    for ours_leaf, their_leaf in ((q, tq), (k, tk), (v, tv)):
        if their_leaf.grad is None:
            assert ours_leaf.grad is None
        else:
            assert_same(ours_leaf.grad, their_leaf.grad, dtype)
    check_param_grads(ours, theirs, dtype)


def test_multihead_attention_train_mode_without_dropout_matches_torch():
    ours, theirs = twin(lambda M: M.nn.MultiheadAttention(E, H, dropout=0.0, batch_first=True))
    x, tx = leaf_pair((N, L, E), "float32")
    out, w = ours(x, x, x)
    tout, tw = theirs(tx, tx, tx)
    assert_same(out, tout)
    assert_same(w, tw)


@pytest.mark.parametrize("masked", [False, True])
def test_multihead_attention_inference_matches_torch_fast_path(masked):
    """Under no_grad in eval mode torch takes its fused fast path; the numbers still agree."""
    ours, theirs = twin(lambda M: M.nn.MultiheadAttention(E, H, batch_first=True))
    ours.eval()
    theirs.eval()
    x = np.random.default_rng(4).standard_normal((N, L, E)).astype(np.float32)
    kw, tkw = {}, {}
    if masked:
        tkw["key_padding_mask"] = _mask("bool", torch, (N, L), seed=2)
        kw["key_padding_mask"] = to_ft(tkw["key_padding_mask"])
    with ft.no_grad(), torch.no_grad():
        tx = torch.tensor(x)
        out, w = ours(ft.tensor(x), ft.tensor(x), ft.tensor(x), **kw)
        tout, tw = theirs(tx, tx, tx, **tkw)
    assert_same(out, tout)
    assert_same(w, tw)


def test_multihead_attention_errors():
    with pytest.raises(AssertionError, match="embed_dim must be divisible by num_heads"):
        ft.nn.MultiheadAttention(6, 4)
    with pytest.raises(ValueError, match="embed_dim and num_heads must be greater than 0"):
        ft.nn.MultiheadAttention(0, 1)
    mha = ft.nn.MultiheadAttention(E, H)
    x = ft.randn(L, N, E)
    with pytest.raises(RuntimeError, match=r"2D attn_mask is torch.Size\(\[2, 2\]\)"):
        mha(x, x, x, attn_mask=ft.zeros(2, 2, dtype=ft.bool))
    with pytest.raises(AssertionError, match="only bool and floating types of attn_mask"):
        mha(x, x, x, attn_mask=ft.zeros(L, L, dtype=ft.int64))
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        mha(x, x, x, is_causal=True)


# --------------------------------------------------------------------------------------------
# nn.utils
# --------------------------------------------------------------------------------------------


def _grads_pair(dtype="float32"):
    ours, theirs = twin(net, dtype)
    idx = np.random.default_rng(3).integers(0, 11, size=(2, 4))
    (ours(ft.tensor(idx)) ** 2).sum().backward()
    (theirs(torch.tensor(idx)) ** 2).sum().backward()
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1, 3.5, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    ours, theirs = _grads_pair()
    total = ft.nn.utils.clip_grad_norm_(ours.parameters(), max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs.parameters(), max_norm, norm_type=norm_type)
    assert_same(total, ttotal)
    check_param_grads(ours, theirs, "float32")


def test_clip_grad_norm_single_tensor_and_nonfinite():
    p = ft.nn.Parameter(ft.ones(3))
    tp = torch.nn.Parameter(torch.ones(3))
    (p * float("inf")).sum().backward()
    (tp * float("inf")).sum().backward()
    assert _error(lambda: ft.nn.utils.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)) == \
        _error(lambda: torch.nn.utils.clip_grad_norm_(tp, 1.0, error_if_nonfinite=True))
    assert_same(ft.nn.utils.clip_grad_norm_([], 1.0), torch.nn.utils.clip_grad_norm_([], 1.0))


def test_clip_grad_value_matches_torch():
    ours, theirs = _grads_pair("float64")
    ft.nn.utils.clip_grad_value_(ours.parameters(), 0.01)
    torch.nn.utils.clip_grad_value_(theirs.parameters(), 0.01)
    check_param_grads(ours, theirs, "float64")


def test_parameters_vector_round_trip_matches_torch():
    ours, theirs = twin(mlp)
    vec = ft.nn.utils.parameters_to_vector(ours.parameters())
    tvec = torch.nn.utils.parameters_to_vector(theirs.parameters())
    assert_same(vec, tvec)
    new = np.random.default_rng(0).standard_normal(tuple(tvec.shape)).astype(np.float32)
    ft.nn.utils.vector_to_parameters(ft.tensor(new), ours.parameters())
    torch.nn.utils.vector_to_parameters(torch.tensor(new), theirs.parameters())
    for p, tp in zip(ours.parameters(), theirs.parameters()):
        assert isinstance(p, ft.nn.Parameter)
        assert_same(p, tp)
    with pytest.raises(TypeError, match="expected torch.Tensor"):
        ft.nn.utils.vector_to_parameters([1.0], ours.parameters())
