"""The Python API names a wrong argument, with its fix, before torch meets it: a TypeError for the wrong kind of
value, a ValueError for one out of range, both cnnzoo's own (so the CLI answers them in one line too), and no
allocation without bound (a head of 10**12 classes, a summary of a 100,000-pixel image)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cnnzoo
from cnnzoo.base.errors import ArgumentTypeError, CnnzooError, ConfigError

CASES = {
    "new_run(None)": (lambda: cnnzoo.new_run(None), ArgumentTypeError, "the model must be a name such as"),
    "new_run(3)": (lambda: cnnzoo.new_run(3), ArgumentTypeError, "not 3"),
    "overrides=[1]": (lambda: cnnzoo.new_run("lenet", overrides=[1]), ArgumentTypeError, "overrides must be a dict"),
    "overrides={1: 2}": (lambda: cnnzoo.new_run("lenet", overrides={1: 2}), ArgumentTypeError, "overrides must be"),
    "data='x'": (lambda: cnnzoo.new_run("lenet", data="x"), ArgumentTypeError, "data must be a dataset"),
    "recipe=3": (
        lambda: cnnzoo.new_run("lenet", recipe=3),
        ArgumentTypeError,
        "recipe must be 'fast', 'd2l' or 'record'",
    ),
    "create_model(None)": (lambda: cnnzoo.create_model(None), ArgumentTypeError, "the model name must be text"),
    "num_classes=10**12": (
        lambda: cnnzoo.create_model("lenet", num_classes=10**12),
        ConfigError,
        "num_classes 1000000000000: must be from 1 to 100,000",
    ),
    "num_classes=0": (lambda: cnnzoo.create_model("lenet", num_classes=0), ConfigError, "must be from 1"),
    "num_classes=2.5": (lambda: cnnzoo.create_model("lenet", num_classes=2.5), ArgumentTypeError, "whole number"),
    "in_channels=True": (lambda: cnnzoo.create_model("lenet", in_channels=True), ArgumentTypeError, "whole number"),
    "in_channels=10**6": (lambda: cnnzoo.create_model("lenet", in_channels=10**6), ConfigError, "from 1 to 64"),
    "summary(m, 100000)": (
        lambda: cnnzoo.summary(cnnzoo.create_model("lenet"), 100_000),
        ConfigError,
        "each side must be from 1 to 1024 pixels",
    ),
    "summary(m, 2.5)": (lambda: cnnzoo.summary(cnnzoo.create_model("lenet"), 2.5), ArgumentTypeError, "whole"),
    "summary(m, 'big')": (
        lambda: cnnzoo.summary(cnnzoo.create_model("lenet"), "big"),
        ArgumentTypeError,
        "input size must be H, (H, W) or (C, H, W)",
    ),
    "summary(m, (28, None))": (
        lambda: cnnzoo.summary(cnnzoo.create_model("lenet"), (28, None)),
        ArgumentTypeError,
        "in whole pixels",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_wrong_argument_is_named_with_its_fix(name):
    call, kind, words = CASES[name]
    with pytest.raises(kind) as info:
        call()
    assert isinstance(info.value, CnnzooError) and words in str(info.value), str(info.value)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, TypeError if kind is ArgumentTypeError else ValueError)


def test_the_predictor_names_its_wrong_arguments():
    model = cnnzoo.load_model("lenet_bn.fashion_mnist")
    with pytest.raises(ArgumentTypeError, match=r"top_k must be a whole number such as 3, not 2\.5"):
        model.predict(np.zeros((28, 28), np.uint8), top_k=2.5)
    with pytest.raises(ConfigError, match="--top-k 0: must be at least 1"):
        model.predict(np.zeros((28, 28), np.uint8), top_k=0)
    with pytest.raises(ArgumentTypeError, match="classify takes pictures prepare\\(\\) returned, not str"):
        model.classify(["x"])
    with pytest.raises(ArgumentTypeError, match="predict takes a picture or a list of them"):
        model.predict(None)
    with pytest.raises(ArgumentTypeError, match="picture 2 is of type int"):
        model.predict([np.zeros((28, 28), np.uint8), 3])


def test_the_right_arguments_in_their_other_spellings_still_work():
    model = cnnzoo.create_model("lenet")
    for size in (28, np.int64(28), (28, 28), torch.Size([28, 28]), (1, 28, 28), [28, 28]):
        assert cnnzoo.summary(model, size).total_params == 61_706, size
    assert cnnzoo.create_model("lenet", num_classes=100_000).model_kwargs["num_classes"] == 100_000
