"""cnnzoo's hand-written batch norm against PyTorch's own nn.BatchNorm1d / nn.BatchNorm2d."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.models import batchnorm as layers

TOL = {"atol": 1e-5, "rtol": 1e-5}

# (ours, PyTorch's, input shape): 2d on NCHW, 1d on both of the shapes nn.BatchNorm1d takes.
CASES = {
    "2d": (layers.BatchNorm2d, nn.BatchNorm2d, (8, 6, 5, 5)),
    "1d-NC": (layers.BatchNorm1d, nn.BatchNorm1d, (16, 6)),
    "1d-NCL": (layers.BatchNorm1d, nn.BatchNorm1d, (4, 6, 7)),
}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small ops on a shared 2-core machine


def pair(case: str, **kwargs) -> tuple[nn.Module, nn.Module, tuple[int, ...]]:
    ours_cls, ref_cls, shape = CASES[case]
    ours, ref = ours_cls(6, **kwargs), ref_cls(6, **kwargs)
    if ref.affine:  # start from a non-trivial gamma/beta, the same in both
        with torch.no_grad():
            ref.weight.uniform_(0.5, 2.0)
            ref.bias.normal_()
    ours.load_state_dict(ref.state_dict())
    return ours, ref, shape


def step(ours: nn.Module, ref: nn.Module, x: torch.Tensor) -> None:
    """One forward and backward through both; outputs and every gradient must agree."""
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), ref(xb)
    torch.testing.assert_close(ya, yb, **TOL)
    grad = torch.randn_like(ya)
    ya.backward(grad)
    yb.backward(grad)
    torch.testing.assert_close(xa.grad, xb.grad, **TOL)
    for p, q in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, **TOL)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"momentum": 0.3}, {"momentum": None}, {"affine": False}, {"eps": 1e-3}],
    ids=["default", "momentum0.3", "cumulative", "no-affine", "eps"],
)
def test_train_and_eval_match_pytorch(case, kwargs):
    torch.manual_seed(0)
    ours, ref, shape = pair(case, **kwargs)
    for _ in range(5):  # several training steps: the running statistics must follow PyTorch's exactly
        step(ours, ref, torch.randn(shape) * 3 + 1)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            torch.testing.assert_close(getattr(ours, name), getattr(ref, name), **TOL)
    assert int(ours.num_batches_tracked) == 5
    ours.eval(), ref.eval()
    step(ours, ref, torch.randn(shape) * 3 + 1)  # eval: normalized by the running statistics
    assert int(ours.num_batches_tracked) == 5  # ... which eval mode leaves alone


@pytest.mark.parametrize("case", sorted(CASES))
def test_without_running_stats_eval_uses_the_batch_like_pytorch(case):
    torch.manual_seed(0)
    ours, ref, shape = pair(case, track_running_stats=False)
    assert ours.running_mean is None and "running_mean" not in ours.state_dict()
    ours.eval(), ref.eval()
    step(ours, ref, torch.randn(shape))


def test_eval_mode_uses_running_statistics_not_the_batch():
    bn = layers.BatchNorm2d(3).eval()
    with torch.no_grad():
        bn.running_mean.fill_(2.0)
        bn.running_var.fill_(4.0)
    x = torch.randn(4, 3, 2, 2)
    torch.testing.assert_close(bn(x), (x - 2.0) / torch.sqrt(torch.tensor(4.0) + bn.eps))
    # The book's code picked statistics by torch.is_grad_enabled(); here the mode decides, grad or not.
    bn.train()
    with torch.no_grad():
        y = bn(x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-6, rtol=0)


def test_momentum_is_pytorchs_convention():
    """momentum weights the new batch: one step from (0, 1) moves the mean 10% of the way (the book's 0.9
    weighted the old value)."""
    bn = layers.BatchNorm1d(2, momentum=0.1)
    x = torch.tensor([[1.0, 10.0], [3.0, 30.0]])
    bn(x)
    torch.testing.assert_close(bn.running_mean, 0.1 * x.mean(0))
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * x.var(0, unbiased=True))


def test_state_dict_keys_and_round_trip():
    ours, ref = layers.BatchNorm2d(4), nn.BatchNorm2d(4)
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert [n for n, _ in ours.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    assert [n for n, _ in ours.named_parameters()] == ["weight", "bias"]
    ours(torch.randn(8, 4, 3, 3))  # non-trivial running statistics
    buffer = io.BytesIO()
    torch.save(ours.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    fresh = layers.BatchNorm2d(4)
    fresh.load_state_dict(loaded, strict=True)
    for name, value in ours.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value), name
    ref.load_state_dict(ours.state_dict(), strict=True)  # and PyTorch's layer takes it as is
    ours.eval(), ref.eval()
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(ours(x), ref(x), **TOL)


def test_buffers_follow_to():
    bn = layers.BatchNorm1d(3).to(torch.float64)
    assert bn.running_mean.dtype == bn.running_var.dtype == bn.weight.dtype == torch.float64
    assert bn.num_batches_tracked.dtype == torch.long
    bn = bn.to("meta")
    assert bn.running_mean.device.type == "meta"


def test_constructor_matches_pytorch():
    args = (5, 1e-3, 0.2, False, True, None, torch.float64)  # positional, in PyTorch's order
    bn, ref = layers.BatchNorm2d(*args), nn.BatchNorm2d(*args)
    assert (bn.num_features, bn.eps, bn.momentum, bn.affine) == (5, 1e-3, 0.2, False)
    assert bn.running_mean.dtype == torch.float64 and bn.weight is None
    assert list(bn.state_dict()) == list(ref.state_dict())
    no_shift = layers.BatchNorm1d(3, bias=False)
    assert no_shift.bias is None and [n for n, _ in no_shift.named_parameters()] == ["weight"]
    x = torch.randn(4, 3)
    torch.testing.assert_close(no_shift(x), layers.BatchNorm1d(3)(x))


def test_loads_a_version_1_state_dict_without_num_batches_tracked():
    state = nn.BatchNorm1d(3).state_dict()
    del state["num_batches_tracked"]
    state._metadata[""]["version"] = 1  # how PyTorch marks a state_dict from before that buffer existed
    state["running_mean"] = torch.ones(3)
    bn = layers.BatchNorm1d(3)
    bn.load_state_dict(state, strict=True)
    assert torch.equal(bn.running_mean, torch.ones(3)) and int(bn.num_batches_tracked) == 0


def test_bad_inputs_raise_like_pytorch():
    with pytest.raises(ValueError, match="expected 4D input"):
        layers.BatchNorm2d(3)(torch.randn(2, 3))
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        layers.BatchNorm1d(3)(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        layers.BatchNorm1d(3)(torch.randn(1, 3))


def test_lenet_bn_scratch_loads_lenet_bn_and_gives_the_same_output():
    torch.manual_seed(0)
    reference = cnnzoo.create_model("lenet_bn")
    opt = torch.optim.SGD(reference.parameters(), lr=0.5)
    for _ in range(3):  # train a little: gamma, beta and running statistics move away from their init
        opt.zero_grad()
        loss = nn.functional.cross_entropy(reference(torch.rand(16, 1, 28, 28)), torch.arange(16) % 10)
        loss.backward()
        opt.step()
    scratch = cnnzoo.create_model("lenet_bn_scratch")
    assert list(scratch.state_dict()) == list(reference.state_dict())
    scratch.load_state_dict(reference.state_dict(), strict=True)
    assert sum(isinstance(m, (layers.BatchNorm1d, layers.BatchNorm2d)) for m in scratch.modules()) == 4
    x = torch.rand(8, 1, 28, 28)
    reference.eval(), scratch.eval()
    torch.testing.assert_close(scratch(x), reference(x), **TOL)
    reference.train(), scratch.train()
    torch.testing.assert_close(scratch(x), reference(x), **TOL)


@pytest.mark.parametrize("name", ["lenet_bn", "lenet_bn_scratch"])
def test_norm_parameters_reads_gamma_and_beta(name):
    model = cnnzoo.create_model(name)
    with torch.no_grad():
        model[1].weight.copy_(torch.arange(6.0))
        model[1].bias.fill_(-1.0)
    found = layers.norm_parameters(model)
    assert [(p.name, p.gamma.shape[0]) for p in found] == [("1", 6), ("5", 16), ("10", 120), ("13", 84)]
    assert torch.equal(found[0].gamma, torch.arange(6.0))
    assert torch.equal(found[0].beta, torch.full((6,), -1.0))
    assert not found[0].gamma.requires_grad  # a detached copy, safe to print or plot


def test_gamma_beta_aliases():
    bn = layers.BatchNorm2d(3)
    assert bn.gamma is bn.weight and bn.beta is bn.bias
