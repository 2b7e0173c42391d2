"""Predicting on the user's own images: any size and mode, polarity, errors, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import cnnzoo.data.pictures as predict_module
from cnnzoo.base.errors import ImageError
from cnnzoo.cli import main
from cnnzoo.data.pictures import load_image
from helpers_files import block_picture, save


def light_on_dark(w=60, h=40):
    a = np.zeros((h, w), np.uint8)
    a[h // 4 : 3 * h // 4, w // 3 : 2 * w // 3] = 220
    return a


def modes(tmp_path):
    """The same light-on-dark picture in many modes, sizes and formats."""
    a = light_on_dark()
    gray = Image.fromarray(a)
    rgb = Image.fromarray(np.stack([a, a // 2, a], axis=-1))
    return {
        "L.png": gray,
        "RGB.jpg": rgb,
        "RGBA.png": rgb.convert("RGBA"),
        "P.png": rgb.convert("P"),
        "1.png": gray.convert("1"),
        "LA.png": gray.convert("LA"),
        "I16.png": Image.fromarray(a.astype(np.uint16) * 257),
        "CMYK.jpg": rgb.convert("CMYK"),
        "big.png": gray.resize((1200, 800)),
        "tall.png": gray.resize((30, 300)),
        "tiny.png": gray.resize((5, 5)),
    }


@pytest.mark.parametrize("name", list(modes(None)))
def test_any_mode_and_size_becomes_a_model_sized_uint8_image(tmp_path, name):
    path = save(tmp_path, name, modes(tmp_path)[name])
    img = load_image(path, size=28)
    assert img.pixels.shape == (1, 28, 28) and img.pixels.dtype == torch.uint8
    assert not img.inverted  # already light on dark
    assert img.pixels[0, 0, 0] < 40 and img.pixels[0, 14, 14] > 60  # dark border, lit centre
    assert load_image(path, size=96, in_channels=3).pixels.shape == (3, 96, 96)


def test_a_dark_object_on_a_light_background_is_inverted(tmp_path):
    path = save(tmp_path, "catalogue.png", Image.fromarray(255 - light_on_dark()))
    auto = load_image(path, size=28)
    assert auto.inverted and auto.pixels[0, 0, 0] < 40 and auto.pixels[0, 14, 14] > 150
    assert not load_image(path, size=28, invert="no").inverted
    assert load_image(save(tmp_path, "x.png", Image.fromarray(light_on_dark())), size=28, invert="yes").inverted


def test_transparency_is_shown_over_white_then_inverted(tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[10:30, 10:30] = (30, 30, 30, 255)  # an opaque dark object, transparent around it
    img = load_image(save(tmp_path, "cutout.png", Image.fromarray(rgba, "RGBA")), size=28)
    assert img.inverted and img.pixels[0, 0, 0] == 0 and img.pixels[0, 14, 14] > 200


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda tmp: tmp / "missing.png", "no such file"),
        (lambda tmp: tmp, "is a directory"),
        (lambda tmp: _bytes(tmp, "notes.png", b"hello, not a picture"), "not an image file PIL can read"),
        (lambda tmp: _truncated_png(tmp), "truncated or corrupt image"),
    ],
    ids=["missing", "directory", "text", "truncated"],
)
def test_bad_files_are_one_line_image_errors(tmp_path, make, fragment):
    with pytest.raises(ImageError) as info:
        load_image(make(tmp_path), size=28)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_oversized_images_are_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(predict_module, "MAX_PIXELS", 1000)
    path = save(tmp_path, "wide.png", Image.new("L", (100, 11)))
    with pytest.raises(ImageError, match=r"100x11 is over the 0\.001-megapixel limit"):
        load_image(path, size=28)


def _bytes(tmp, name, data):
    (tmp / name).write_bytes(data)
    return tmp / name


def _truncated_png(tmp):
    path = save(tmp, "full.png", Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200), np.uint8)))
    return _bytes(tmp, "cut.png", path.read_bytes()[:600])


def test_predict_cli_ranks_classes_for_pictures_of_several_sizes_and_modes(trained_run, tmp_path, capsys):
    pictures = []
    for k, scale, dark, mode in [(0, 1, False, "L"), (3, 5, True, "RGB"), (7, 10, False, "RGBA"), (9, 3, True, "L")]:
        picture = block_picture(k, scale=scale, dark_on_light=dark, mode=mode)
        pictures.append((k, save(tmp_path, f"class{k}.png", picture)))
    argv = ["predict", str(trained_run / "best.pt"), *(str(p) for _, p in pictures), "--top-k", "3", "--json"]
    assert main(argv) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == len(pictures)
    for (k, path), rec in zip(pictures, records):
        probs = [t["probability"] for t in rec["top"]]
        assert rec["image"] == str(path) and len(rec["top"]) == 3
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
        assert rec["top"][0]["class"] == f"class{k}", rec
    assert [r["inverted"] for r in records] == [False, True, False, True]
    assert main(["predict", str(trained_run), str(pictures[0][1]), "--top-k", "2"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].startswith(str(pictures[0][1])) and text[1].lstrip().startswith("1. class0")
    # a 6x4 block in a 28x28 frame is a speck next to a garment: the table says so under its two classes
    assert len(text) == 4 and text[3] == "  warning: " + records[0]["warning"], text
    assert "covers almost none of the frame" in text[3]


def test_predict_cli_reports_a_bad_image_as_a_user_error(trained_run, tmp_path, capsys):
    path = _bytes(tmp_path, "x.jpg", b"\xff\xd8\xff garbage")
    assert main(["predict", str(trained_run / "last.pt"), str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "x.jpg" in err
