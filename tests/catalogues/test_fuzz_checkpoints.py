"""Fuzzing the checkpoint loader (issue 13): a real checkpoint with its fields mutated (types, shapes, NaN,
huge numbers, missing and extra keys), saved with ``torch.save`` and loaded through ``load_checkpoint`` +
``model_from_checkpoint`` (and ``cnnzoo eval`` for some). The only outcomes allowed are success or one of
cnnzoo's typed errors (:class:`~cnnzoo.base.errors.CnnzooError`) with a one-line message, within a time and
memory bound: a stranger's checkpoint must not allocate what its fields ask for."""

from __future__ import annotations

import copy
import math
import resource
import tempfile
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnzoo.base.errors import CnnzooError
from cnnzoo.cli import main
from cnnzoo.train.checkpoint import load_checkpoint, model_from_checkpoint

# the fields a mutation aims at, as paths into the checkpoint dict
FIELDS = [
    ("model_name",), ("model_kwargs",), ("model_kwargs", "num_classes"), ("model_kwargs", "in_channels"),
    ("model_state",), ("preprocess",), ("preprocess", "input_size"), ("preprocess", "in_channels"),
    ("preprocess", "mean"), ("preprocess", "std"), ("preprocess", "classes"), ("config",), ("config", "lr"),
    ("config", "epochs"), ("config", "seed"), ("config", "resize"), ("config", "model_kwargs"), ("train",),
    ("train", "epoch"), ("train", "history"), ("train", "partial"), ("train", "optimizer"),
    ("train", "optimizer", "param_groups"), ("train", "optimizer", "state"), ("train", "rng"), ("format",),
    ("version",),
]  # fmt: skip

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 10**12, 2**63, 28, 3]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.one_of(st.integers(-5, 5), st.floats(), st.text(max_size=3)), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(-3, 3), max_size=3),
    st.sampled_from(
        [torch.zeros(3), torch.full((2, 2), math.nan), torch.ones(1, 1, 1, 1), torch.tensor([math.inf]), torch.empty(0)]
    ),
)


def _apply(ckpt: dict, path: tuple[str, ...], action: str, value: object) -> None:
    target = ckpt
    for key in path[:-1]:
        if not isinstance(target, dict) or key not in target:
            return
        target = target[key]
    if not isinstance(target, dict):
        return
    if action == "delete":
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value


def _weights(ckpt: dict, action: str, value: object, index: int) -> None:
    """Mutate one weight tensor: NaN, a wrong shape, dropped, or an extra one."""
    state = ckpt.get("model_state")
    if not isinstance(state, dict) or not state or not all(isinstance(k, str) for k in state):
        return
    key = sorted(state)[index % len(state)]
    if not isinstance(state[key], torch.Tensor):
        return
    if action == "nan" and state[key].is_floating_point():
        state[key] = state[key].clone()
        state[key].view(-1)[0] = math.nan
    elif action == "shape":
        state[key] = torch.zeros([d + 1 for d in state[key].shape] or [2])
    elif action == "drop":
        del state[key]
    else:
        state[f"extra{index}"] = value


MUTATION = st.one_of(
    st.tuples(st.just("field"), st.sampled_from(FIELDS), st.sampled_from(["set", "delete"]), VALUES),
    st.tuples(st.just("weights"), st.sampled_from(["nan", "shape", "drop", "extra"]), VALUES, st.integers(0, 50)),
)


@pytest.fixture(scope="module")
def base_checkpoint(trained_run) -> dict:
    ckpt = load_checkpoint(trained_run / "last.pt")
    ckpt.pop("path")
    return ckpt


def _check_outcome(path: Path) -> None:
    try:
        model_from_checkpoint(load_checkpoint(path))
    except CnnzooError as exc:
        assert "\n" not in str(exc) and str(exc), repr(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_a_mutated_checkpoint_loads_or_fails_with_one_typed_line(base_checkpoint, mutations):
    ckpt = copy.deepcopy(base_checkpoint)
    for m in mutations:
        if m[0] == "field":
            _apply(ckpt, m[1], m[2], copy.deepcopy(m[3]))
        else:
            _weights(ckpt, m[1], m[2], m[3])
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "mutated.pt"
        torch.save(ckpt, path)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.monotonic()
        _check_outcome(path)
        assert time.monotonic() - start < 5
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # KiB on Linux
        assert grown_mib < 512, f"loading took {grown_mib:.0f} MiB more"


@pytest.mark.parametrize(
    "mutation",
    [
        ("field", ("config", "lr"), "set", "fast"),
        ("field", ("preprocess", "classes"), "set", [1, 2]),
        ("weights", "nan", None, 0),
        ("weights", "shape", None, 3),
        ("field", ("train", "epoch"), "set", -4),
    ],
)
def test_mutated_checkpoints_through_eval_are_one_line(base_checkpoint, fake_train_data, mutation, tmp_path, capsys):
    ckpt = copy.deepcopy(base_checkpoint)
    if mutation[0] == "field":
        _apply(ckpt, mutation[1], mutation[2], mutation[3])
    else:
        _weights(ckpt, mutation[1], mutation[2], mutation[3])
    torch.save(ckpt, tmp_path / "m.pt")
    assert main(["eval", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "m.pt" in err, err


def test_the_unmutated_checkpoint_loads(base_checkpoint, tmp_path):
    torch.save(base_checkpoint, tmp_path / "ok.pt")
    model = model_from_checkpoint(load_checkpoint(tmp_path / "ok.pt"))
    assert sum(p.numel() for p in model.parameters()) > 0
