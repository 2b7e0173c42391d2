"""Muon (cnnzoo.train.optim.Muon): orthogonalised updates for conv filters, Nesterov SGD for the rest."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from cnnzoo import create_model
from cnnzoo.base.errors import ConfigError
from cnnzoo.train.optim import Muon, build_optimizer, newton_schulz
from cnnzoo.train.recipes import resolve_config


def muon_config(**overrides):
    return resolve_config("speednet", "fast", {"optimizer": "muon", "device": "cpu", **overrides})


@pytest.mark.parametrize("shape", [(64, 576), (576, 64), (10, 10)])
def test_newton_schulz_brings_every_singular_value_near_one_and_keeps_the_vectors(shape):
    # singular values spread over a factor of 30, as a gradient's are
    gen = torch.Generator().manual_seed(0)
    k = min(shape)
    u, _ = torch.linalg.qr(torch.randn(shape[0], k, generator=gen))
    v, _ = torch.linalg.qr(torch.randn(shape[1], k, generator=gen))
    g = u @ torch.diag(torch.logspace(-1.5, 0, k)) @ v.T
    x = newton_schulz(g)
    s = torch.linalg.svdvals(x)
    assert x.shape == g.shape
    assert s.min() > 0.5 and s.max() < 1.3  # Keller Jordan's coefficients: about 0.7 to 1.2, not exactly 1
    # the same singular vectors: x is close to U V^T in direction
    assert torch.nn.functional.cosine_similarity(x.flatten(), (u @ v.T).flatten(), dim=0) > 0.95


def test_muon_groups_filters_apart_at_their_own_rate_without_decay():
    model = create_model("speednet")
    opt = build_optimizer(model, muon_config(lr=0.3, muon_lr=0.05, weight_decay=1e-3))
    assert isinstance(opt, Muon)
    decayed, plain, filters = opt.param_groups
    assert filters["orthogonal"] and filters["lr"] == 0.05 and filters["weight_decay"] == 0
    assert all(p.ndim == 4 for p in filters["params"]) and len(filters["params"]) == 4
    assert not decayed["orthogonal"] and decayed["lr"] == 0.3 and decayed["weight_decay"] == 1e-3
    assert [p.ndim for p in decayed["params"]] == [2]  # the head's weight
    assert plain["weight_decay"] == 0 and all(p.ndim == 1 for p in plain["params"])


def test_the_other_parameters_move_exactly_as_with_pytorchs_nesterov_sgd():
    torch.manual_seed(0)
    head = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    twin = copy.deepcopy(head)
    ours = Muon([{"params": list(head.parameters()), "weight_decay": 1e-2}], lr=0.1, momentum=0.9)
    theirs = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2)
    for step in range(5):
        x = torch.randn(8, 6, generator=torch.Generator().manual_seed(step))
        for net, opt in ((head, ours), (twin, theirs)):
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()
    for a, b in zip(head.parameters(), twin.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-7)


def test_a_filter_bank_moves_by_an_orthogonalised_step_of_the_learning_rate():
    conv = nn.Conv2d(4, 16, 3, bias=False)
    start = conv.weight.detach().clone()
    opt = Muon([{"params": [conv.weight], "orthogonal": True}], lr=0.01, momentum=0.0)
    gen = torch.Generator().manual_seed(0)
    out = conv(torch.randn(8, 4, 8, 8, generator=gen))
    (out * torch.randn(out.shape, generator=gen)).sum().backward()  # a full-rank gradient
    opt.step()
    step = (start - conv.weight.detach()).flatten(1) / 0.01  # [16, 36]: wider than tall, so no extra scale
    s = torch.linalg.svdvals(step)
    assert s.min() > 0.5 and s.max() < 1.3
    grad = conv.weight.grad.flatten(1)
    assert torch.sum(step * grad) > 0  # a descent direction


def test_muon_trains_and_its_state_round_trips():
    torch.manual_seed(0)
    model = create_model("speednet")
    opt = build_optimizer(model, muon_config())
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.7
    again = build_optimizer(model, muon_config())
    again.load_state_dict(opt.state_dict())
    assert again.param_groups[-1]["orthogonal"] and len(again.state) == len(opt.state)


def test_muon_flags_need_the_muon_optimizer():
    with pytest.raises(ConfigError, match="--muon-lr applies to --optimizer muon only"):
        resolve_config("speednet", "fast", {"muon_lr": 0.1})
    with pytest.raises(ConfigError, match="--muon-lr 0: the learning rate must be a positive"):
        muon_config(muon_lr=0)
    assert muon_config(momentum=0.8).momentum == 0.8  # --momentum is Muon's too
