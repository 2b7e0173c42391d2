"""hubconf.py: torch.hub builds every registered model from this repository."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnzoo import create_model, get_model_info, list_models
from cnnzoo.base.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_hub_load_builds_resnet18_with_keyword_arguments():
    model = torch.hub.load(str(REPO), "resnet18", source="local", num_classes=7, in_channels=3)
    assert model.model_name == "resnet18" and model.model_kwargs == {"num_classes": 7, "in_channels": 3}
    assert n_params(model) == n_params(create_model("resnet18", num_classes=7, in_channels=3))
    with torch.no_grad():
        assert model.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize(("name", "kwargs", "size"), [("lenet_bn", {}, 28), ("densenet", {"small_input": True}, 29)])
def test_hub_load_builds_other_models(name, kwargs, size):
    model = torch.hub.load(str(REPO), name, source="local", **kwargs)
    assert model.model_name == name and n_params(model) == n_params(create_model(name, **kwargs))
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 1, size, size)).shape == (1, 10)


def test_hub_list_and_help_cover_every_registered_model(monkeypatch):
    # torch.hub.list/help only take GitHub names: serve this checkout as the "downloaded" repository.
    monkeypatch.setattr(torch.hub, "_get_cache_or_reload", lambda *args, **kwargs: str(REPO))
    assert torch.hub.list("cnnzoo/cnnzoo") == list_models()
    doc = torch.hub.help("cnnzoo/cnnzoo", "resnet18")
    assert doc.startswith(get_model_info("resnet18").description)
    assert "create_model('resnet18', weights=None, **kwargs)" in doc and "96x96" in doc
    assert "lenet_bn.fashion_mnist" in torch.hub.help("cnnzoo/cnnzoo", "lenet_bn")  # its trained weights


def test_pretrained_weights_of_a_model_without_any_are_refused_with_a_clear_error():
    with pytest.raises(ConfigError, match="no trained weights for vgg11 yet"):
        torch.hub.load(str(REPO), "vgg11", source="local", pretrained=True)


def test_hubconf_finds_the_repository_source_when_cnnzoo_is_not_installed():
    src = REPO / "src"
    code = f"""
import importlib.util, sys
from pathlib import Path
sys.path[:] = [p for p in sys.path if Path(p or '.').resolve() != Path({str(src)!r})]
assert importlib.util.find_spec("cnnzoo") is None, "cnnzoo is importable without the repository's src/"
import torch
model = torch.hub.load({str(REPO)!r}, "lenet", source="local", num_classes=3)
import cnnzoo
print(Path(cnnzoo.__file__).resolve().parent, model.model_kwargs["num_classes"])
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(src / "cnnzoo"), "3"]
