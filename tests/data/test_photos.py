"""Phone-photo-like pictures: the benchmark's builder, levelling and cropping in ``load_image``, the warning."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

import cnnzoo
from cnnzoo.base.errors import ConfigError, ImageError
from cnnzoo.bench.photos import photo_benchmark
from cnnzoo.cli import main
from cnnzoo.data.fashion_mnist import find_fashion_mnist
from cnnzoo.data.photolike import photo_like, photo_like_jpegs
from cnnzoo.data.pictures import load_image, picture_warning


@pytest.fixture(scope="module")
def fashion():
    """The first 300 Fashion-MNIST *test* images and labels (held out: never trained on)."""
    if find_fashion_mnist() is None:
        pytest.skip("Fashion-MNIST is not installed: `make data` (or apt-get install dataset-fashion-mnist)")
    data = cnnzoo.data.load_fashion_mnist()
    return data.test_images[:300].numpy(), data.test_labels[:300].numpy()


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def corr(a, b) -> float:
    return float(np.corrcoef(np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel())[0, 1])


def test_photo_like_pictures_are_seeded_jpegs_of_a_dark_object_on_lighter_paper(fashion):
    images = fashion[0][:6]
    jpegs = photo_like_jpegs(images, seed=3)
    assert jpegs == photo_like_jpegs(images, seed=3) and jpegs != photo_like_jpegs(images, seed=4)
    swapped = photo_like_jpegs(np.concatenate([images[5:], images[1:]]), seed=3)
    assert swapped[1:] == jpegs[1:] and swapped[0] != jpegs[0]  # one stream per picture: no neighbour matters
    pictures = photo_like(images, fashion[1][:6], seed=3)
    assert all(p.size == (224, 224) and p.mode == "L" for p in pictures)
    assert all(Image.open(io.BytesIO(j)).format == "JPEG" for j in jpegs)
    # The same seed on blank images draws the same paper, light and noise: the difference is the object.
    papers = photo_like(np.zeros_like(images), seed=3)
    for picture, paper in zip(pictures, papers):
        a, b = np.asarray(picture, np.float64), np.asarray(paper, np.float64)
        rows, cols = np.nonzero((b - a > 25).any(axis=1))[0], np.nonzero((b - a > 25).any(axis=0))[0]
        long_side = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) / 224
        assert 0.45 <= long_side <= 0.72, long_side  # drawn from 50-70 %, less the faintest edge pixels
        inside = np.zeros(a.shape, bool)
        inside[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = True
        assert a[b - a > 25].mean() < a[~inside].mean() - 40  # the object is darker than the paper around it
        assert np.ptp(b[20:-20, 20:-20]) > 15  # the paper is lit unevenly (a gradient, noise)


def test_levelling_and_cropping_bring_a_photo_back_to_the_training_picture(fashion):
    images = fashion[0][:30]
    jpegs = photo_like_jpegs(images, seed=0)
    auto = [corr(load_image(j, size=28, preprocess="auto").pixels[0], a) for j, a in zip(jpegs, images)]
    whole = [corr(load_image(j, size=28, preprocess="none").pixels[0], a) for j, a in zip(jpegs, images)]
    # measured on 100 pictures: median correlation 0.86 with the new steps, 0.27 without
    assert np.median(auto) > 0.75 and np.median(whole) < 0.45, (np.median(auto), np.median(whole))
    prepared = load_image(jpegs[0], size=28, preprocess="auto").pixels[0].numpy()
    ring = np.concatenate([prepared[0], prepared[-1], prepared[:, 0], prepared[:, -1]])
    assert np.median(ring) == 0 and prepared.max() == 255  # black paper, full range


def test_real_fashion_mnist_pictures_pass_through_unchanged(fashion):
    images = fashion[0][:150]
    diffs = np.array([np.abs(load_image(png(a), size=28, preprocess="auto").pixels[0].numpy() - a.astype(np.int16))
                      .mean() for a in images])  # fmt: skip
    # measured: median 0, 95th percentile 0.67, 99th 1.3 grey levels (the 3-sigma noise cut, a re-centring)
    assert (diffs == 0).mean() > 0.5 and (diffs < 1).mean() > 0.9 and (diffs < 2).mean() > 0.97, np.percentile(
        diffs, [50, 95, 99]
    )


def test_the_warning_fires_on_noise_and_flat_pictures_and_is_rare_on_real_ones(fashion):
    rng = np.random.default_rng(0)
    unlike = [rng.integers(0, 256, (120, 160), dtype=np.uint8) for _ in range(3)]
    unlike += [np.clip(rng.normal(128, 40, (100, 100)), 0, 255).astype(np.uint8), np.full((64, 64), 200, np.uint8)]
    unlike += [np.zeros((28, 28), np.uint8)]
    for array in unlike:
        img = load_image(png(array), size=28, preprocess="auto", check=True)
        assert img.warning is not None and "no object found" in img.warning, img.warning
    warned = [load_image(png(a), size=28, preprocess="auto", check=True).warning for a in fashion[0][:150]]
    assert sum(w is not None for w in warned) / len(warned) < 0.05
    assert picture_warning(torch.from_numpy(fashion[0][0][None])) is None


def test_bytes_go_through_the_same_path_as_files_sniffed_by_content(trained_run, tmp_path, fashion):
    model = cnnzoo.load_model(trained_run)
    assert model.preprocess == "auto" and model.check  # a Fashion-MNIST checkpoint
    data = photo_like_jpegs(fashion[0][:1])[0]
    path = tmp_path / "photo.png"  # a JPEG under a PNG's name
    path.write_bytes(data)
    from_file, from_bytes = model.prepare(path), model.prepare_bytes(data, name="shoe.gif")
    assert torch.equal(from_file.pixels, from_bytes.pixels) and from_bytes.path == "shoe.gif"
    with path.open("rb") as f:
        assert torch.equal(model.prepare(f).pixels, from_file.pixels)
    (record,) = model.classify([from_bytes], top_k=2)
    assert record["image"] == "shoe.gif" and record["preprocessed"] and len(record["top"]) == 2
    with pytest.raises(ImageError, match=r"upload\.jpg: the upload is empty"):
        model.prepare_bytes(b"", name="upload.jpg")
    with pytest.raises(ImageError, match="not an image file PIL can read"):
        model.prepare_bytes(b"hello")
    with pytest.raises(ConfigError, match="--preprocess maybe: choose auto or none"):
        cnnzoo.load_model(trained_run, preprocess="maybe")


def test_predict_cli_warns_and_preprocess_none_turns_the_new_steps_off(trained_run, tmp_path, capsys, fashion):
    photo, flat = tmp_path / "photo.jpg", tmp_path / "flat.png"
    photo.write_bytes(photo_like_jpegs(fashion[0][:1])[0])
    flat.write_bytes(png(np.full((80, 80), 190, np.uint8)))
    seen = {}
    for pre in ("auto", "none"):
        seen[pre] = tmp_path / f"seen-{pre}"
        argv = ["predict", str(trained_run), str(photo), str(flat), "--save-input", str(seen[pre]), "--json"]
        assert main([*argv, "--preprocess", pre]) == 0
        out, err = capsys.readouterr()
        records = json.loads(out)
        assert [r["preprocessed"] for r in records] == [pre == "auto"] * 2
        assert "no object found" in records[1]["warning"]
        assert err.startswith("warning: ") and " of 2 pictures may not be classified reliably: " in err
        assert "no object found (1)" in err
        assert len(err.strip().splitlines()) == 1
    # --save-input shows the levelled, cropped picture: the garment, not the sheet of paper
    auto, whole = (np.asarray(Image.open(seen[p] / "0001-photo.png")) for p in ("auto", "none"))
    assert corr(auto, fashion[0][0]) > 0.7 > 0.5 > corr(whole, fashion[0][0])
    assert main(["predict", str(trained_run), str(flat)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1].startswith("  warning: no object found") and "1 of 1 pictures" in err


def test_photo_benchmark_scores_through_the_files_users_give(trained_run, fashion):
    model = cnnzoo.load_model(trained_run)
    images, labels = fashion[0][:8], fashion[1][:8]
    acc = photo_benchmark(model, images, labels, seed=1)
    predicted = [r["top"][0]["label"] for r in model.classify([model.prepare_bytes(j) for j in
                                                               photo_like_jpegs(images, seed=1)], top_k=1)]  # fmt: skip
    assert acc == pytest.approx(np.mean(np.array(predicted) == labels))
    with pytest.raises(ValueError, match="8 images and 3 labels"):
        photo_benchmark(model, images, labels[:3])
