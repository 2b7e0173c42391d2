"""load_dataset: MNIST/KMNIST/CIFAR-10 through torchvision on test-made files, and folder:PATH datasets."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
from PIL import Image

import cnnzoo.data.pictures
from cnnzoo.base.errors import ConfigError, DataCorruptError, DataError, DataNotFoundError
from cnnzoo.data.datasets import list_datasets, load_dataset
from helpers_files import write_mnist_raw

from conftest import make_arrays

# ------------------------------------------------------------------------------------------------
# helpers: files in torchvision's layouts
# ------------------------------------------------------------------------------------------------


CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar(root: Path, monkeypatch, n_per_batch: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """Tiny pickled batches in ``root/cifar-10-batches-py/``, as the official ones are laid out.

    torchvision checks every batch against a fixed MD5 (``CIFAR10.train_list``/``test_list``/``meta``):
    those lists are patched to the MD5s of these files.
    """
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_images, train_labels = [], []
    md5 = {}

    def dump(name: str, obj: dict) -> None:
        blob = pickle.dumps(obj)
        (folder / name).write_bytes(blob)
        md5[name] = hashlib.md5(blob).hexdigest()

    for i in range(1, 6):
        data = rng.integers(0, 256, (n_per_batch, 3 * 32 * 32), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        dump(f"data_batch_{i}", {"batch_label": f"training batch {i} of 5", "data": data, "labels": labels})
        train_images.append(data)
        train_labels += labels
    test = rng.integers(0, 256, (3, 3 * 32 * 32), dtype=np.uint8)
    dump("test_batch", {"batch_label": "testing batch 1 of 1", "data": test, "labels": [0, 9, 5]})
    dump("batches.meta", {"label_names": CIFAR_NAMES, "num_cases_per_batch": n_per_batch, "num_vis": 3072})
    monkeypatch.setattr(tvd.CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(tvd.CIFAR10, "meta", {**tvd.CIFAR10.meta, "md5": md5["batches.meta"]})
    return {
        "train_images": np.concatenate(train_images).reshape(-1, 3, 32, 32),
        "train_labels": np.array(train_labels),
        "test_images": test.reshape(-1, 3, 32, 32),
        "test_labels": np.array([0, 9, 5]),
    }


def no_network(monkeypatch) -> None:
    """Point every torchvision downloader used here at a closed local port."""
    for cls in (tvd.MNIST, tvd.KMNIST):
        monkeypatch.setattr(cls, "mirrors", ["http://127.0.0.1:9/"])
    monkeypatch.setattr(tvd.CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")


# ------------------------------------------------------------------------------------------------
# built-in datasets
# ------------------------------------------------------------------------------------------------
def test_list_datasets_names_every_spec():
    assert list_datasets() == ["fashion-mnist", "mnist", "kmnist", "cifar10", "folder:PATH"]


@pytest.mark.parametrize(
    ("spec", "tv_class", "classes"),
    [("mnist", "MNIST", list("0123456789")), ("kmnist", "KMNIST", ["o", "ki", "su", "tsu", "na"])],
)
def test_mnist_family_loads_torchvision_raw_layout(isolated_data, spec, tv_class, classes):
    arrays = make_arrays(n_train=30, n_test=10, seed=3)
    raw = write_mnist_raw(isolated_data / "data", tv_class, arrays)
    ds = load_dataset(spec, root=isolated_data / "data", download=False)
    assert ds.name == spec and ds.source == str(raw)
    assert ds.train_images.dtype == torch.uint8 and ds.train_images.shape == (30, 28, 28)
    assert ds.test_labels.dtype == torch.int64 and ds.test_labels.shape == (10,)
    np.testing.assert_array_equal(ds.train_images.numpy(), arrays["train_images"])
    np.testing.assert_array_equal(ds.test_labels.numpy(), arrays["test_labels"])
    assert ds.classes[: len(classes)] == classes and len(ds.classes) == 10
    assert not ds.verified  # torchvision only checks that MNIST's raw files exist


def test_default_root_is_the_user_cache(isolated_data):
    arrays = make_arrays(n_train=20, n_test=10)
    write_mnist_raw(isolated_data / "xdg-cache" / "cnnzoo" / "mnist", "MNIST", arrays)
    ds = load_dataset("mnist", download=False)
    assert ds.source == str(isolated_data / "xdg-cache" / "cnnzoo" / "mnist" / "MNIST" / "raw")
    assert ds.train_images.shape == (20, 28, 28)


def test_fashion_mnist_spec_delegates_to_its_loader(fake_fashion):
    ds = load_dataset("Fashion_MNIST", root=fake_fashion.directory, download=False)
    assert ds.name == "fashion-mnist" and ds.verified and ds.classes[0] == "T-shirt/top"
    np.testing.assert_array_equal(ds.test_images.numpy(), fake_fashion.arrays["test_images"])


def test_cifar10_loads_pickled_batches_as_nchw_uint8(isolated_data, monkeypatch):
    arrays = write_cifar(isolated_data, monkeypatch)
    ds = load_dataset("cifar-10", root=isolated_data, download=False)
    assert ds.name == "cifar10" and ds.verified and ds.classes == CIFAR_NAMES
    assert ds.train_images.shape == (20, 3, 32, 32) and ds.train_images.dtype == torch.uint8
    assert ds.in_channels == 3 and ds.image_size == (32, 32)
    np.testing.assert_array_equal(ds.train_images.numpy(), arrays["train_images"])
    np.testing.assert_array_equal(ds.test_labels.numpy(), arrays["test_labels"])


def test_cifar10_as_grayscale_equals_pil_conversion(isolated_data, monkeypatch):
    arrays = write_cifar(isolated_data, monkeypatch)
    ds = load_dataset("cifar10", root=isolated_data, download=False, in_channels=1)
    assert ds.train_images.shape == (20, 32, 32) and ds.extra["channels_from"] == 3
    for i in (0, 7, 19):
        pil = Image.fromarray(arrays["train_images"][i].transpose(1, 2, 0), "RGB").convert("L")
        np.testing.assert_array_equal(ds.train_images[i].numpy(), np.asarray(pil))
    assert len(ds.stats[0]) == 1  # statistics of the converted images


def test_mnist_as_rgb_repeats_the_gray_channel(isolated_data):
    arrays = make_arrays(n_train=20, n_test=10)
    write_mnist_raw(isolated_data, "MNIST", arrays)
    ds = load_dataset("mnist", root=isolated_data, download=False, in_channels=3)
    assert ds.train_images.shape == (20, 3, 28, 28) and ds.in_channels == 3
    for c in range(3):
        np.testing.assert_array_equal(ds.train_images[:, c].numpy(), arrays["train_images"])


def test_a_damaged_cifar_batch_is_named(isolated_data, monkeypatch):
    write_cifar(isolated_data, monkeypatch)
    batch = isolated_data / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:-10])
    with pytest.raises(DataCorruptError, match=r"data_batch_3 failed the MD5 check"):
        load_dataset("cifar10", root=isolated_data, download=False)


def test_a_truncated_mnist_file_is_corrupt_not_missing(isolated_data):
    raw = write_mnist_raw(isolated_data, "MNIST", make_arrays(n_train=20, n_test=10))
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataCorruptError, match=r"MNIST in .*raw: cannot read the files"):
        load_dataset("mnist", root=isolated_data, download=False)


@pytest.mark.parametrize(("spec", "where"), [("mnist", "MNIST/raw"), ("kmnist", "KMNIST/raw"), ("cifar10", "cifar-")])
def test_missing_dataset_without_download_says_where_and_how(isolated_data, spec, where):
    with pytest.raises(DataNotFoundError) as info:
        load_dataset(spec, root=isolated_data / "empty", download=False)
    message = str(info.value)
    assert "\n" not in message and where in message and "download not attempted" in message
    assert str(isolated_data / "empty") in message


@pytest.mark.parametrize("spec", ["mnist", "cifar10"])
def test_failed_download_is_a_one_line_not_found(isolated_data, monkeypatch, spec):
    no_network(monkeypatch)
    with pytest.raises(DataNotFoundError, match=r"the download failed: .*fix: check the network") as info:
        load_dataset(spec, root=isolated_data / "dl", download=True)
    assert "\n" not in str(info.value)


def test_unknown_spec_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown dataset 'cifar' \(did you mean cifar10\?\): choose fashion-mnist"):
        load_dataset("cifar")
    with pytest.raises(ConfigError, match=r"mnist, kmnist, cifar10 or folder:PATH"):
        load_dataset("imagenet")
    with pytest.raises(ConfigError, match="in_channels must be 1"):
        load_dataset("mnist", in_channels=2)


# ------------------------------------------------------------------------------------------------
# folder:PATH
# ------------------------------------------------------------------------------------------------
def save_image(path: Path, mode: str, size: tuple[int, int], seed: int = 0, fmt: str | None = None) -> Path:
    """A random image of ``mode`` and ``size`` (width, height) at ``path``."""
    rng = np.random.default_rng(seed)
    w, h = size
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    elif mode == "P":
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").quantize(16)
    else:
        bands = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
        pixels = rng.integers(0, 256, (h, w, bands), dtype=np.uint8)
        img = Image.fromarray(pixels[..., 0] if bands == 1 else pixels, mode)
    img.save(path, format=fmt)
    return path


def make_folder(root: Path, spec: dict[str, list[tuple[str, tuple[int, int]]]], suffix: str = ".png") -> None:
    for k, (cls, images) in enumerate(spec.items()):
        for i, (mode, size) in enumerate(images):
            save_image(root / cls / f"{i:03d}{suffix}", mode, size, seed=1000 * k + i)


MIXED = {
    "cat": [("RGB", (40, 30)), ("RGBA", (20, 20)), ("P", (33, 17)), ("L", (24, 24)), ("RGB", (30, 30))],
    "dog": [("I;16", (16, 16)), ("L", (25, 40)), ("RGB", (30, 30)), ("L", (12, 12))],
    "emu": [("RGB", (64, 48)), ("L", (30, 30))],
}


def test_folder_without_test_split_holds_out_a_stratified_fraction(isolated_data):
    make_folder(isolated_data / "pets", MIXED)
    ds = load_dataset(f"folder:{isolated_data / 'pets'}", val_fraction=0.25, seed=1)
    assert ds.classes == ["cat", "dog", "emu"] and ds.name == f"folder:{isolated_data / 'pets'}"
    # RGB images present -> 3 channels; size: median of the longer sides (40,20,33,24,30,16,40,30,12,64,30)
    assert ds.in_channels == 3 and ds.image_size == (30, 30)
    assert ds.train_images.dtype == torch.uint8 and ds.train_images.shape == (8, 3, 30, 30)
    # round(0.25 * n), at least one, at most n - 1: cat 5 -> 1, dog 4 -> 1, emu 2 -> 1
    assert ds.class_counts("test") == [1, 1, 1] and ds.class_counts("train") == [4, 3, 1]
    again = load_dataset(f"folder:{isolated_data / 'pets'}", val_fraction=0.25, seed=1)
    assert torch.equal(again.test_images, ds.test_images) and torch.equal(again.train_labels, ds.train_labels)
    others = [load_dataset(f"folder:{isolated_data / 'pets'}", val_fraction=0.25, seed=s).test_images for s in (2, 3)]
    assert any(not torch.equal(o, ds.test_images) for o in others)  # the seed picks the held-out images


def test_folder_images_are_prepared_like_predict_prepares_them(isolated_data):
    make_folder(isolated_data / "pets", MIXED)
    ds = load_dataset(f"folder:{isolated_data / 'pets'}", image_size=20, in_channels=1, val_fraction=0.5, seed=0)
    assert ds.train_images.shape[1:] == (20, 20) and ds.in_channels == 1
    every = torch.cat([ds.train_images, ds.test_images])
    files = sorted((isolated_data / "pets").rglob("*.png"))
    expected = torch.stack(
        [cnnzoo.data.pictures.load_image(f, size=20, in_channels=1, invert="no").pixels[0] for f in files]
    )
    # the splits are a permutation of the files: compare as sets of images
    assert sorted(map(bytes, every.flatten(1).numpy())) == sorted(map(bytes, expected.flatten(1).numpy()))


def test_sixteen_bit_images_are_scaled_not_clipped(isolated_data):
    for cls, value in (("dark", 8_000), ("light", 56_000)):
        for i in range(2):
            path = isolated_data / "scans" / cls / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((12, 12), value, dtype=np.uint16)).save(path)
    ds = load_dataset(f"folder:{isolated_data / 'scans'}", val_fraction=0.5)
    assert ds.in_channels == 1 and ds.image_size == (12, 12)
    by_class = {ds.classes[int(y)]: int(x.float().mean()) for x, y in zip(ds.train_images, ds.train_labels)}
    assert by_class == {"dark": round(8_000 / 65535 * 255), "light": round(56_000 / 65535 * 255)}


def test_folder_with_train_and_test_folders_uses_them(isolated_data):
    root = isolated_data / "split"
    make_folder(root / "train", {"a": [("L", (10, 10))] * 3, "b": [("L", (10, 10))] * 2})
    make_folder(root / "test", {"b": [("L", (14, 14))] * 2})  # a class may have no test images
    save_image(root / "train" / "a" / "nested" / "deep.jpg", "L", (10, 10), fmt="JPEG")
    ds = load_dataset(f"folder:{root}")
    assert ds.classes == ["a", "b"] and ds.in_channels == 1 and ds.image_size == (10, 10)
    assert ds.class_counts("train") == [4, 2] and ds.class_counts("test") == [0, 2]
    assert ds.extra["layout"] == "train/ and test/"


def test_val_folder_stands_in_for_test(isolated_data):
    root = isolated_data / "split"
    make_folder(root / "train", {"a": [("RGB", (8, 8))] * 2, "b": [("RGB", (8, 8))] * 2})
    make_folder(root / "val", {"a": [("RGB", (8, 8))], "b": [("RGB", (8, 8))]})
    ds = load_dataset(f"folder:{root}")
    assert ds.extra["layout"] == "train/ and val/" and ds.test_labels.tolist() == [0, 1]


def test_many_images_decode_in_threads_and_a_corrupt_one_is_named(isolated_data):
    root = isolated_data / "many"
    make_folder(root, {"x": [("L", (6, 6))] * 40, "y": [("RGB", (6, 6))] * 40})
    ds = load_dataset(f"folder:{root}", val_fraction=0.1)
    assert len(ds.train_labels) + len(ds.test_labels) == 80 and ds.class_counts("test") == [4, 4]
    png = (root / "y" / "017.png").read_bytes()
    (root / "y" / "017.png").write_bytes(png[: len(png) // 2])  # the header survives, the pixels do not
    with pytest.raises(DataCorruptError, match=r"y/017\.png: truncated or corrupt image.*remove or replace"):
        load_dataset(f"folder:{root}")


def test_decoded_folder_is_cached_until_a_file_changes(isolated_data, monkeypatch):
    root = isolated_data / "pets"
    make_folder(root, MIXED)
    first = load_dataset(f"folder:{root}", image_size=16)
    cached = list((isolated_data / "xdg-cache" / "cnnzoo" / "folders").rglob("decoded-*.pt"))
    assert len(cached) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cnnzoo.data.pictures, "load_image", refuse)
    second = load_dataset(f"folder:{root}", image_size=16)
    assert torch.equal(first.train_images, second.train_images) and first.classes == second.classes
    path = root / "dog" / "001.png"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset(f"folder:{root}", image_size=16)


def test_non_image_files_are_skipped_with_a_warning(isolated_data):
    root = isolated_data / "pets"
    make_folder(root, {"a": [("L", (8, 8))] * 2, "b": [("L", (8, 8))] * 2})
    (root / "a" / "notes.txt").write_text("not a picture")
    (root / "b" / ".DS_Store").write_bytes(b"\0")  # hidden: ignored without a word
    with pytest.warns(UserWarning, match=r"skipped 1 file\(s\).*a/notes\.txt"):
        ds = load_dataset(f"folder:{root}", val_fraction=0.5)
    assert ds.extra["skipped"] == [str(root / "a" / "notes.txt")]


def test_folder_errors_are_typed_one_liners(isolated_data, monkeypatch):
    base = isolated_data
    cases = []
    cases.append((DataNotFoundError, f"folder:{base / 'nowhere'}", "no such directory"))
    (base / "empty").mkdir()
    cases.append((DataError, f"folder:{base / 'empty'}", "no class folders in"))
    make_folder(base / "one", {"only": [("L", (8, 8))]})
    cases.append((DataError, f"folder:{base / 'one'}", "only one class folder"))
    make_folder(base / "hollow", {"a": [("L", (8, 8))]})
    (base / "hollow" / "b").mkdir()
    cases.append((DataError, f"folder:{base / 'hollow'}", r"class folder .*hollow/b has no images"))
    save_image(base / "loose" / "x.png", "L", (8, 8))
    cases.append((DataError, f"folder:{base / 'loose'}", "holds images but no class folders"))
    make_folder(base / "garbage", {"a": [("L", (8, 8))], "b": [("L", (8, 8))]})
    (base / "garbage" / "b" / "bad.png").write_bytes(b"this is not a png")
    cases.append((DataCorruptError, f"folder:{base / 'garbage'}", r"garbage/b/bad\.png: not an image file"))
    make_folder(base / "strays" / "train", {"a": [("L", (8, 8))], "b": [("L", (8, 8))]})
    make_folder(base / "strays" / "test", {"c": [("L", (8, 8))]})
    cases.append((DataError, f"folder:{base / 'strays'}", r"test/c has no matching class folder"))
    make_folder(base / "singles", {"a": [("L", (8, 8))], "b": [("L", (8, 8))]})
    cases.append((DataError, f"folder:{base / 'singles'}", "too few images to hold out a test split"))
    cases.append((ConfigError, "folder:", "needs a directory"))
    for error, spec, pattern in cases:
        with pytest.raises(error, match=pattern) as info:
            load_dataset(spec)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="val_fraction"):
        load_dataset(f"folder:{base / 'singles'}", val_fraction=1.0)


def test_oversized_images_and_datasets_are_refused_before_decoding(isolated_data, monkeypatch):
    root = isolated_data / "pets"
    make_folder(root, {"a": [("L", (30, 30))] * 4, "b": [("L", (30, 30))] * 4})

    def refuse(*args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(cnnzoo.data.pictures, "load_image", refuse)  # only the headers may be read
    with pytest.raises(
        DataError, match=r"8 images at 30x30 with 1 channel\(s\) take 7\.0 KiB as uint8, over the 1000 B budget"
    ):
        load_dataset(f"folder:{root}", max_bytes=1000)
    monkeypatch.setattr(cnnzoo.data.pictures, "MAX_PIXELS", 800)
    with pytest.raises(DataError, match=r"a/000\.png: 30x30 pixels is over .*decompression bomb"):
        load_dataset(f"folder:{root}")
