"""TrainConfig, the recipes and their validation."""

from __future__ import annotations

import dataclasses

import pytest

from cnnzoo.base.errors import ConfigError, UnknownModelError
from cnnzoo.models.registry import get_model_info, list_models
from cnnzoo.train.config import TrainConfig, config_from_dict
from cnnzoo.train.recipes import RECIPES, d2l_models, recipe_values, resolve_config

# The book's train_ch6 calls: model -> (lr, batch size, input side). Its batch-norm section trains the
# hand-written BatchNorm LeNet (lenet_bn_scratch) and then the nn.BatchNorm one with the same values.
D2L_SETUPS = {
    "lenet": (0.9, 256, 28),
    "alexnet": (0.01, 128, 224),
    "vgg11_small": (0.05, 128, 224),
    "nin": (0.1, 128, 224),
    "googlenet": (0.1, 128, 96),
    "lenet_bn": (1.0, 256, 28),
    "lenet_bn_scratch": (1.0, 256, 28),
    "resnet18": (0.05, 256, 96),
    "densenet": (0.1, 256, 96),
}


@pytest.mark.parametrize("model", sorted(D2L_SETUPS))
def test_d2l_recipe_reproduces_each_setup_of_the_book(model):
    lr, batch, side = D2L_SETUPS[model]
    c = resolve_config(model, "d2l")
    assert (c.lr, c.batch_size, c.resize, c.epochs) == (lr, batch, side, 10)
    assert (c.optimizer, c.schedule, c.init, c.augment) == ("sgd", "none", "xavier", "none")
    assert (c.weight_decay, c.label_smoothing, c.warmup_epochs, c.grad_clip) == (0.0, 0.0, 0.0, 0.0)
    assert c.normalize is False  # d2l uses ToTensor() only


def test_the_d2l_recipe_covers_exactly_the_networks_whose_builders_say_how_the_book_trains_them():
    assert d2l_models() == sorted(D2L_SETUPS)
    for model, (lr, batch, side) in D2L_SETUPS.items():
        book = get_model_info(model).book_training
        assert (book.lr, book.batch_size, book.input_size) == (lr, batch, side)


def test_every_recipe_entry_names_a_registered_model():
    registered = set(list_models())
    for recipe, (_, per_model) in RECIPES.items():
        assert set(per_model) <= registered, recipe


def test_the_fast_recipe_tunes_every_network_without_batchnorm():
    # The common values (momentum, PyTorch's init) left GoogLeNet, NiN and VGG at chance; a network
    # without BatchNorm must get a measured set-up of its own: AdamW (with Xavier, except the LeNet).
    import torch
    from torch import nn

    from cnnzoo.models import batchnorm as layers
    from cnnzoo.models.registry import create_model

    kinds = (nn.modules.batchnorm._BatchNorm, layers._BatchNorm)
    with torch.device("meta"):  # structure only: no memory for VGG-11's 129M parameters
        no_bn = {n for n in list_models() if not any(isinstance(m, kinds) for m in create_model(n).modules())}
    assert no_bn == {"lenet", "alexnet", "vgg11", "vgg11_small", "nin", "googlenet"}
    for name in no_bn:
        values = recipe_values("fast", name)
        assert values["optimizer"] == "adamw", name
        assert values["init"] == ("default" if name == "lenet" else "xavier"), name


def test_fast_is_the_default_recipe_and_resize_defaults_to_the_model_input_size():
    c = resolve_config("resnet18")
    assert c.recipe == "fast"
    assert c.resize == 96
    assert resolve_config("lenet_bn").resize == 28


def test_explicit_overrides_beat_the_recipe_and_none_means_not_given():
    c = resolve_config("lenet", "d2l", {"lr": 0.3, "epochs": 2, "batch_size": None, "augment": "flip"})
    assert (c.lr, c.epochs, c.batch_size, c.augment) == (0.3, 2, 256, "flip")
    assert c.init == "xavier"  # untouched recipe value


def test_d2l_for_a_model_the_book_does_not_train_needs_lr_and_batch_size():
    with pytest.raises(ConfigError, match="the book does not train 'resnet34', so the d2l recipe has no set-up"):
        resolve_config("resnet34", "d2l")
    c = resolve_config("resnet34", "d2l", {"lr": 0.05, "batch_size": 64})
    assert (c.optimizer, c.init, c.lr, c.batch_size) == ("sgd", "xavier", 0.05, 64)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"epochs": 0}, "--epochs 0"),
        ({"epochs": -3}, "--epochs -3"),
        ({"batch_size": 0}, "--batch-size 0"),
        ({"lr": 0.0}, "--lr 0.0"),
        ({"lr": -0.1}, "--lr -0.1"),
        ({"lr": float("nan")}, "--lr nan"),
        ({"optimizer": "rmsprop"}, "unknown optimizer"),
        ({"schedule": "linear"}, "unknown schedule"),
        ({"precision": "fp16"}, "unknown precision"),
        ({"device": "tpu"}, "unknown device"),
        ({"augment": "rotate"}, "unknown augment"),
        ({"label_smoothing": 1.0}, "--label-smoothing 1.0"),
        ({"weight_decay": -1e-4}, "--weight-decay"),
        ({"grad_clip": -1.0}, "--grad-clip"),
        ({"resize": 20}, "below lenet_bn's minimum input size 28"),
        ({"resize": 64}, "above lenet_bn's maximum input size 31"),
        ({"optimizer": "adam", "momentum": 0.8}, "--momentum applies to --optimizer momentum or muon only"),
        ({"schedule": "onecycle", "warmup_epochs": 1.0}, "onecycle has its own warm-up"),
        ({"schedule": "cosine", "warmup_epochs": 5.0, "epochs": 5}, "shorter than the 5 epochs"),
        ({"schedule": "cosine", "gamma": 0.5}, "--gamma applies to --schedule step only"),
        ({"augment": "flip", "crop_padding": 4}, "--crop-padding needs --augment crop"),
    ],
)
def test_invalid_settings_are_one_line_config_errors(overrides, fragment):
    with pytest.raises(ConfigError) as info:
        resolve_config("lenet_bn", "fast", overrides)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_model_and_recipe():
    with pytest.raises(UnknownModelError, match="lenet"):
        resolve_config("lenett")
    with pytest.raises(ConfigError, match="unknown recipe 'slow'"):
        recipe_values("slow", "lenet")


def test_unknown_override_keys_are_a_bug_not_a_user_error():
    with pytest.raises(TypeError, match="lr_max"):
        resolve_config("lenet", "fast", {"lr_max": 1.0})


def test_config_round_trips_through_plain_data_and_refuses_unknown_keys():
    c = resolve_config("lenet_bn", "fast", {"epochs": 3, "seed": 7})
    assert config_from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="warp_speed"):
        config_from_dict({**c.to_dict(), "warp_speed": 9})


def test_the_dataclass_defaults_are_valid_and_frozen():
    c = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.lr = 1.0  # type: ignore[misc]


def test_the_record_recipe_is_the_speed_records_set_up_for_its_two_networks_only():
    from cnnzoo.base.errors import ConfigError

    fast, record = resolve_config("speednet"), resolve_config("speednet", "record")
    assert record.recipe == "record" and record.epochs > fast.epochs
    assert (record.augment, record.tta, record.precision) == ("altflip", "flip", "bf16-native")
    assert resolve_config("speednet_wide", "record").tta == "flip+shift"
    assert resolve_config("speednet", "record", {"epochs": 3}).epochs == 3  # the user's flags still win
    with pytest.raises(ConfigError, match=r"speednet and speednet_wide only.*--recipe fast"):
        resolve_config("lenet_bn", "record")
