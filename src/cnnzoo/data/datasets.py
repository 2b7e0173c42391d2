"""Every dataset cnnzoo trains on, by name: ``load_dataset("mnist")``, ``load_dataset("folder:~/pets")``.

=================  ====================================================================================
``fashion-mnist``  :func:`~cnnzoo.data.fashion_mnist.load_fashion_mnist` (its own sources and checksums)
``mnist``          torchvision's ``MNIST``: ``ROOT/MNIST/raw/`` holding the four uncompressed IDX files
``kmnist``         torchvision's ``KMNIST`` (Kuzushiji-MNIST): ``ROOT/KMNIST/raw/``, the same four names
``cifar10``        torchvision's ``CIFAR10``: ``ROOT/cifar-10-batches-py/`` (torchvision checks each batch's MD5)
``folder:PATH``    your own images in the ImageFolder layout, see below
=================  ====================================================================================

``ROOT`` is the ``root`` argument, by default the user cache ``$XDG_CACHE_HOME/cnnzoo/<name>``
(``~/.cache/...``). A missing dataset is downloaded there by torchvision's own downloader when
``download=True``; what cannot be found or fetched is a :class:`~cnnzoo.base.errors.DataNotFoundError` saying
where it looked and how to fix it. The built-in sets keep their native size (28x28, CIFAR-10 32x32): the
device-resident batches resize them to the model's input size.

**folder:PATH** reads ``PATH/train/<class>/...`` and ``PATH/test/<class>/...`` (``val/`` when there is no
``test/``) or, with no ``train/`` folder, ``PATH/<class>/...``, from which a stratified ``val_fraction`` of
each class (at least one image of every class that has two) is held out as the test split, drawn with
``seed``. Classes are the sorted folder names; images in nested folders belong to their class folder;
hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints``) are ignored; other files whose suffix is
not an image type are skipped *with a warning* naming them, and so are FIFOs, sockets, devices, broken
links (never opened), cnnzoo run directories (a folder holding only runs, ``runs/``, is never a class) and
links to a directory already scanned: every real directory is scanned once, so links make neither loops
nor duplicates. A scan meeting more than :data:`MAX_SCAN_ENTRIES` entries stops. Each image is prepared as
:func:`cnnzoo.data.pictures.load_image` prepares a picture to classify, so training and prediction see the same
pixels: EXIF orientation applied, transparency over white, 16-bit scaled (not clipped), mapped to
``in_channels`` (1: grayscale ``L``, 3: ``RGB``; default 1 when every image is grayscale, else 3), padded to a
square with its border's colour (no distortion, nothing cropped) and resized to ``image_size`` (default: the
median of the images' longer sides, at most :data:`DEFAULT_MAX_SIDE`; the CLI passes the model's input
size). A file that cannot be decoded is a :class:`~cnnzoo.base.errors.DataCorruptError` naming it: nothing is
dropped silently. The uint8 size is computed before decoding and refused over ``max_bytes`` (4 GiB), and
the decoded tensors are cached in ``$XDG_CACHE_HOME/cnnzoo/folders/`` under a key made of the path, size and
modification time of every file and the requested size and channels, so the second load is one
``torch.load``; the cache carries a digest of its pixels and is decoded again when they changed on disk.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import os
import signal
import socket
import stat
import statistics
import threading
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from tqdm.auto import tqdm

from cnnzoo.base.errors import ConfigError, DataCorruptError, DataError, DataNotFoundError, ImageError
from cnnzoo.base.rundirs import is_run_dir
from cnnzoo.data import (  # pictures as a module: folders and predictions share one load_image and MAX_PIXELS
    fashion_mnist,
    pictures,
)
from cnnzoo.data.cache import cache_dir, read_decoded, write_decoded
from cnnzoo.data.dataset import ImageDataset
from cnnzoo.data.fashion_mnist import load_fashion_mnist
from cnnzoo.data.idx import MAX_IDX_BYTES, check_idx_file

__all__ = [
    "DATASETS",
    "DEFAULT_MAX_SIDE",
    "IMAGE_SUFFIXES",
    "MAX_BYTES",
    "MAX_SCAN_ENTRIES",
    "MNIST_LIKE",
    "dataset_name",
    "list_datasets",
    "load_dataset",
]

DATASETS = ("fashion-mnist", "mnist", "kmnist", "cifar10", "folder:PATH")
MAX_BYTES = 4 * 2**30  # decoded uint8 images larger than this are refused, not swapped to death
MAX_SCAN_ENTRIES = 2_000_000  # files and folders a folder dataset's scan may meet before it is refused
DEFAULT_MAX_SIDE = 224  # the largest input any model in the zoo is trained at
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp")
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10"}
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
_PROGRESS_MIN = 300  # decoding fewer images than this is quick enough to need no progress bar
_THREADS_MIN = 64  # below this a thread pool costs more than it saves
_FOLDER_CACHE_FORMAT = 1  # bump when the preparation of an image changes


MNIST_LIKE = frozenset({"fashion-mnist", "mnist", "kmnist"})  # light objects on a black background


def dataset_name(spec: str) -> str:
    """The canonical name of ``spec`` (``"Fashion_MNIST"`` -> ``"fashion-mnist"``); ``folder:PATH`` unchanged."""
    if spec.startswith("folder:"):
        return spec
    name = spec.strip().lower()
    return _ALIASES.get(name, name)


def list_datasets() -> list[str]:
    """The dataset specs :func:`load_dataset` accepts (``folder:PATH`` stands for any directory)."""
    return list(DATASETS)


def load_dataset(
    spec: str,
    *,
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    image_size: int | None = None,
    in_channels: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    max_bytes: int = MAX_BYTES,
    progress: bool = True,
) -> ImageDataset:
    """Load the dataset ``spec`` (see the module docstring) as uint8 tensors.

    ``root``/``download``: where the built-in sets live and whether to fetch them (ignored for folders).
    ``image_size``: the common side folder images are resized to (the built-in sets keep theirs).
    ``in_channels``: 1 or 3; None keeps the dataset's own (for a folder: 1 if every image is grayscale).
    ``seed``/``val_fraction``: the held-out split of a folder without ``test/``.
    ``max_bytes``: refuse a folder whose decoded images would be larger. ``progress``: a bar when decoding
    many folder images on a terminal.
    """
    if in_channels not in (None, 1, 3):
        raise ConfigError(f"in_channels must be 1 (grayscale) or 3 (RGB), got {in_channels}")
    if image_size is not None and image_size < 1:
        raise ConfigError(f"image size must be >= 1, got {image_size}")
    if spec.startswith("folder:"):
        path = spec[len("folder:") :]
        if not path:
            raise ConfigError("folder: needs a directory, as in folder:~/pictures")
        return _load_folder(
            Path(path).expanduser(),
            image_size=image_size,
            in_channels=in_channels,
            seed=seed,
            val_fraction=val_fraction,
            max_bytes=max_bytes,
            progress=progress,
        )
    name = dataset_name(spec)
    if name == "fashion-mnist":
        data = load_fashion_mnist(root, download=download)
    elif name in _BUILTINS:
        data = _load_torchvision(_BUILTINS[name], root, download)
    else:
        close = difflib.get_close_matches(name, DATASETS, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"unknown dataset {spec!r}{hint}: choose {', '.join(DATASETS[:-1])} or folder:PATH")
    return _with_channels(data, in_channels)


# ------------------------------------------------------------------------------------------------
# MNIST, KMNIST, CIFAR-10 through torchvision
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Builtin:
    name: str
    title: str
    tv_class: str  # the class in torchvision.datasets
    classes: tuple[str, ...] | None  # None: torchvision's names


_BUILTINS = {
    "mnist": _Builtin("mnist", "MNIST", "MNIST", tuple("0123456789")),  # torchvision says "0 - zero"
    "kmnist": _Builtin("kmnist", "KMNIST", "KMNIST", None),
    "cifar10": _Builtin("cifar10", "CIFAR-10", "CIFAR10", None),
}


def _expected_files(cls: type, root: Path) -> tuple[Path, list[str]]:
    """The directory torchvision reads and the file names it requires there."""
    if hasattr(cls, "base_folder"):  # CIFAR: pickled batches plus batches.meta
        names = [f for f, _ in [*cls.train_list, *cls.test_list]] + [cls.meta["filename"]]
        return root / cls.base_folder, names
    return root / cls.__name__ / "raw", [os.path.splitext(f)[0] for f, _ in cls.resources]  # MNIST family


def _load_torchvision(b: _Builtin, root: str | os.PathLike[str] | None, download: bool) -> ImageDataset:
    import torchvision.datasets  # lazy: importing torchvision adds about a second to every start-up

    cls = getattr(torchvision.datasets, b.tv_class)
    base = Path(root).expanduser() if root is not None else cache_dir(b.name)
    directory, names = _expected_files(cls, base)
    missing = [n for n in names if not (directory / n).is_file()]
    if missing and not download:
        raise DataNotFoundError(
            f"{b.title} not found in {directory} ({_missing(missing, names)}); download not attempted: "
            f"allow the download, or put the files there (or point --data-root at a directory holding "
            f"{directory.relative_to(base)}/)"
        )
    _check_sizes(b.title, cls, directory, names)
    try:
        if missing:
            base.mkdir(parents=True, exist_ok=True)
        with _download_bounds(directory, active=download and bool(missing)):
            train = cls(str(base), train=True, download=download and bool(missing))
        test = cls(str(base), train=False, download=False)
    except Exception as exc:  # torchvision raises RuntimeError, URLError, AssertionError, pickle errors, ...
        still_missing = [n for n in names if not (directory / n).is_file()]
        if still_missing:
            raise DataNotFoundError(
                f"{b.title} not found in {directory} ({_missing(still_missing, names)}) and the download "
                f"failed: {_one_line(exc)}; fix: check the network, or put the files there yourself"
            ) from None
        raise DataCorruptError(f"{b.title} in {directory}: {_diagnose(cls, directory, exc)}") from None
    arrays = {}
    for split, ds in (("train", train), ("test", test)):
        images = torch.as_tensor(np.asarray(ds.data))
        if images.dim() == 4:  # CIFAR keeps [N, H, W, C] numpy arrays
            images = images.permute(0, 3, 1, 2)
        arrays[f"{split}_images"] = images.contiguous()
        arrays[f"{split}_labels"] = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    classes = list(b.classes) if b.classes is not None else [str(c) for c in train.classes]
    _check_arrays(b.title, directory, arrays, len(classes))
    return ImageDataset(
        name=b.name,
        classes=classes,
        source=str(directory),
        verified=hasattr(cls, "base_folder"),  # torchvision checks CIFAR's MD5s, only the presence of MNIST's
        **arrays,
    )


READ_TIMEOUT = 30.0  # seconds a download may wait for its next bytes


@contextmanager
def _download_bounds(directory: Path, *, active: bool) -> Iterator[None]:
    """torchvision's own downloader (MNIST, KMNIST, CIFAR-10) under cnnzoo's bounds: each read waits at most
    :data:`READ_TIMEOUT`, the whole download at most Fashion-MNIST's ``DOWNLOAD_DEADLINE`` (in the main
    thread, by a timer signal), and a download that fails or is stopped leaves none of its partial files."""
    if not active:
        yield
        return
    before = set(directory.rglob("*")) if directory.exists() else set()
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(READ_TIMEOUT)
    deadline = fashion_mnist.DOWNLOAD_DEADLINE
    timed = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")

    def expire(signum: int, frame: object) -> None:
        raise DataNotFoundError(f"the download took longer than {deadline:g} s")

    if timed and signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        timed = False  # the caller's own timer is running: leave it alone (it bounds the call already)
    previous = signal.signal(signal.SIGALRM, expire) if timed else None
    if timed:
        signal.setitimer(signal.ITIMER_REAL, deadline)
    try:
        yield
    except BaseException:
        for path in sorted(set(directory.rglob("*")) - before, reverse=True):  # files first, then folders
            if path.is_file() or path.is_symlink():
                path.unlink(missing_ok=True)
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        raise
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        socket.setdefaulttimeout(old_timeout)


def _check_sizes(title: str, cls: type, directory: Path, names: list[str]) -> None:
    """Refuse, before torchvision reads them whole, files far larger than the dataset can be."""
    for name in names:
        path = directory / name
        if not path.is_file():
            continue
        if hasattr(cls, "base_folder"):  # CIFAR's pickled batches: about 31 MB each
            if path.stat().st_size > MAX_IDX_BYTES:
                raise DataCorruptError(
                    f"{path}: {path.stat().st_size} bytes, far larger than a CIFAR-10 batch: replace it"
                )
        else:
            try:
                check_idx_file(path)
            except DataCorruptError as exc:
                raise DataCorruptError(
                    f"{title} in {directory}: cannot read the files ({exc}): they are damaged or not the official "
                    "ones, replace them"
                ) from None


def _missing(missing: list[str], names: list[str]) -> str:
    return f"none of its {len(names)} files" if len(missing) == len(names) else f"missing {', '.join(missing)}"


def _diagnose(cls: type, directory: Path, exc: BaseException) -> str:
    if hasattr(cls, "base_folder"):
        from torchvision.datasets.utils import check_integrity  # lazy, as in _load_torchvision

        listed = [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]
        bad = [f for f, md5 in listed if not check_integrity(str(directory / f), md5)]
        if bad:
            return f"{', '.join(bad)} failed the MD5 check: damaged, or not the official files; replace them"
    return f"cannot read the files ({_one_line(exc)}): they are damaged or not the official ones, replace them"


def _check_arrays(title: str, directory: Path, arrays: dict[str, Tensor], num_classes: int) -> None:
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.dtype != torch.uint8 or images.dim() not in (3, 4) or labels.shape != images.shape[:1]:
            raise DataCorruptError(
                f"{title} in {directory}: the {split} split has images {tuple(images.shape)} {images.dtype} and "
                f"labels {tuple(labels.shape)}: the files are damaged, replace them"
            )
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise DataCorruptError(
                f"{title} in {directory}: {split} labels outside 0..{num_classes - 1}: damaged files, replace them"
            )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _with_channels(data: ImageDataset, in_channels: int | None) -> ImageDataset:
    """``data`` with its images mapped to ``in_channels`` (gray repeated, or RGB to PIL's luma)."""
    have = data.in_channels
    if in_channels is None or in_channels == have:
        return data
    if have not in (1, 3):
        raise ConfigError(f"{data.name} has {have} channels: cannot map them to {in_channels}")
    return dataclasses.replace(
        data,
        train_images=_map_channels(data.train_images, in_channels),
        test_images=_map_channels(data.test_images, in_channels),
        extra={**data.extra, "channels_from": have},
    )


def _map_channels(images: Tensor, in_channels: int, chunk: int = 8192) -> Tensor:
    if in_channels == 3:  # [N, H, W] -> [N, 3, H, W]
        return images.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    # [N, 3, H, W] -> [N, H, W] with ITU-R 601-2 luma in PIL's fixed-point form, so it equals Image.convert("L").
    out = torch.empty((images.shape[0], *images.shape[2:]), dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):
        rgb = images[start : start + chunk].to(torch.int32)
        luma = rgb[:, 0] * 19595 + rgb[:, 1] * 38470 + rgb[:, 2] * 7471 + 0x8000
        out[start : start + chunk] = (luma >> 16).to(torch.uint8)
    return out


# ------------------------------------------------------------------------------------------------
# folder:PATH
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Listing:
    """The files of a folder dataset, in a fixed order: every train file, then every test file."""

    root: Path
    classes: list[str]
    files: list[tuple[Path, int]]  # (path, label)
    num_train: int
    test_dir: str | None  # "test" or "val"; None: hold a split out of the train files
    skipped: list[Path]
    ignored: list[str] = dataclasses.field(default_factory=list)  # "path (why)": links, FIFOs, runs, ...


def _load_folder(
    root: Path,
    *,
    image_size: int | None,
    in_channels: int | None,
    seed: int,
    val_fraction: float,
    max_bytes: int,
    progress: bool,
) -> ImageDataset:
    root = root.resolve()
    listing = _list_folder(root)
    if listing.test_dir is None and not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if listing.skipped:
        shown = ", ".join(str(p.relative_to(root)) for p in listing.skipped[:3])
        more = f" and {len(listing.skipped) - 3} more" if len(listing.skipped) > 3 else ""
        warnings.warn(
            f"folder:{root}: skipped {len(listing.skipped)} file(s) whose suffix is not an image type "
            f"({shown}{more}); images must end in {', '.join(IMAGE_SUFFIXES)}",
            stacklevel=3,
        )
    if listing.ignored:
        more = f" and {len(listing.ignored) - 3} more" if len(listing.ignored) > 3 else ""
        warnings.warn(
            f"folder:{root}: ignored {len(listing.ignored)} entries ({', '.join(listing.ignored[:3])}{more})",
            stacklevel=3,
        )
    labels = torch.tensor([label for _, label in listing.files], dtype=torch.int64)
    if listing.test_dir is None:  # draw the split first: a folder too small for one is refused before decoding
        train_idx, test_idx = _stratified_split(labels, len(listing.classes), val_fraction, seed)
        if test_idx.numel() == 0:
            raise DataError(
                f"folder:{root}: too few images to hold out a test split (no class has two): add images, "
                "or a test/ folder beside train/"
            )
        layout = f"held-out {val_fraction:g} of each class (seed {seed})"
    else:
        train_idx, test_idx = slice(0, listing.num_train), slice(listing.num_train, None)  # views, no copies
        layout = f"train/ and {listing.test_dir}/"

    key = _folder_cache_key(listing, image_size, in_channels)
    cache_file = cache_dir("folders") / hashlib.sha256(str(root).encode()).hexdigest()[:16] / f"decoded-{key}.pt"
    images = _read_folder_cache(cache_file, len(listing.files))
    if images is None:
        images = _decode_folder(listing, image_size, in_channels, max_bytes, progress)
        _write_folder_cache(cache_file, images)
    splits = (images[train_idx], labels[train_idx], images[test_idx], labels[test_idx])
    return ImageDataset(
        name=f"folder:{root}",
        train_images=splits[0],
        train_labels=splits[1],
        test_images=splits[2],
        test_labels=splits[3],
        classes=list(listing.classes),
        source=str(root),
        verified=False,
        extra={"layout": layout, "skipped": [str(p) for p in listing.skipped]},
    )


def _list_folder(root: Path) -> _Listing:
    if not root.exists():
        raise DataNotFoundError(f"folder:{root}: no such directory")
    if not root.is_dir():
        raise DataError(f"folder:{root} is a file: give a directory holding one folder of images per class")
    train_dir, test_dir = root, None
    if (root / "train").is_dir():
        train_dir = root / "train"
        test_dir = next((n for n in ("test", "val") if (root / n).is_dir()), None)
    scan = _Scan(root)
    classes = _class_folders(train_dir, root, scan)
    if len(classes) < 2:
        raise DataError(f"folder:{root}: only one class folder ({classes[0]}): a classifier needs at least two")
    test_classes = _class_folders(root / test_dir, root, scan) if test_dir is not None else []
    scan.reserve(root, train_dir, *([root / test_dir] if test_dir else []))
    scan.reserve(*(train_dir / n for n in classes), *(root / test_dir / n for n in test_classes), classes=True)
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        files += [(p, label) for p in _class_images(train_dir / name, scan)]
    num_train = len(files)
    if test_dir is not None:
        index = {name: i for i, name in enumerate(classes)}
        for name in test_classes:
            if name not in index:
                raise DataError(
                    f"{root / test_dir / name} has no matching class folder in {train_dir}: rename or remove it"
                )
            files += [(p, index[name]) for p in _class_images(root / test_dir / name, scan)]
    return _Listing(root, classes, files, num_train, test_dir, scan.skipped, scan.ignored)


def _dir_key(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _holds_runs(path: Path) -> bool:
    """A cnnzoo run, or a folder (``runs/``) with runs in it: never a class."""
    if is_run_dir(path):
        return True
    runs = False
    try:
        with os.scandir(path) as it:
            for e in it:  # every entry a run (hidden ones aside): a class holding one stray run stays a class
                if e.name.startswith("."):
                    continue
                if not (_is_dir(e) and is_run_dir(Path(e.path))):
                    return False
                runs = True
    except OSError:
        return False
    return runs


class _Scan:
    """One folder scan's bookkeeping: every real directory at most once, entries counted, odd ones noted."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.real_root = Path(os.path.realpath(root))
        self.reserved: set[tuple[int, int]] = set()  # the root, train/, test/ and the class folders themselves
        self.visited: set[tuple[int, int]] = set()
        self.skipped: list[Path] = []  # files whose suffix is not an image type
        self.ignored: list[str] = []  # "path (why)"
        self.entries = 0

    def count(self) -> None:
        self.entries += 1
        if self.entries > MAX_SCAN_ENTRIES:
            raise DataError(
                f"folder:{self.root}: more than {MAX_SCAN_ENTRIES} files and folders under it: point folder: at "
                "the dataset itself (one folder of images per class), not at a whole disk"
            )

    def reserve(self, *dirs: Path, classes: bool = False) -> None:
        """Mark ``dirs`` as scanned only as themselves; two class folders that are one directory are refused."""
        for d in dirs:
            key = _dir_key(d)
            real = Path(os.path.realpath(d))
            if classes and (key in self.reserved or self.real_root.is_relative_to(real)):
                raise DataError(
                    f"folder:{self.root}: class folder {d} is the same directory as {real}, already part of the "
                    "dataset (a link to the dataset folder or to another class): remove the link"
                )
            self.reserved.add(key)

    def enter(self, path: Path, top: bool = False) -> bool:
        """Whether to scan the directory ``path``; a repeated, enclosing or run directory is noted and not."""
        try:
            key = _dir_key(path)
        except OSError as exc:
            self.ignored.append(f"{path} ({exc.strerror})")
            return False
        why = None
        if not top and (key in self.reserved or key in self.visited):
            why = "a link to a folder already scanned"
        elif not top and self.real_root.is_relative_to(os.path.realpath(path)):
            why = "a link to a folder that holds the dataset"
        elif not top and is_run_dir(path):
            why = "a cnnzoo run directory"
        if why:
            self.ignored.append(f"{path} ({why})")
            return False
        self.visited.add(key)
        return True


def _class_folders(directory: Path, root: Path, scan: _Scan) -> list[str]:
    names = []
    for e in sorted(os.scandir(directory), key=lambda e: e.name):
        scan.count()
        if e.name.startswith(".") or not _is_dir(e):
            continue
        if _holds_runs(Path(e.path)):
            scan.ignored.append(f"{e.path} (cnnzoo runs, not a class)")
            continue
        names.append(e.name)
    if not names:
        loose = any(e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES) for e in os.scandir(directory))
        if loose:
            raise DataError(
                f"folder:{root}: {directory} holds images but no class folders: move each class's images into "
                f"{directory}/<class>/"
            )
        raise DataError(
            f"folder:{root}: no class folders in {directory}: expected {root}/<class>/*.png, or "
            f"{root}/train/<class>/ and {root}/test/<class>/"
        )
    return names


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows a link
    except OSError:
        return False


def _kind(entry: os.DirEntry) -> str:
    """``"dir"``, ``"file"`` (regular), or why the entry is ignored; nothing is opened."""
    if _is_dir(entry):
        return "dir"
    try:
        mode = entry.stat().st_mode  # follows a link; a FIFO is stat-ed, never opened
    except OSError as exc:
        return "a broken link" if entry.is_symlink() else f"unreadable: {exc.strerror}"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    return "a socket" if stat.S_ISSOCK(mode) else "a device or other special file"


def _class_images(directory: Path, scan: _Scan) -> list[Path]:
    """Image files under ``directory`` (recursively, in ``os.walk``'s sorted top-down order).

    Non-image files go to ``scan.skipped``; FIFOs, sockets, devices, broken links, cnnzoo runs and links to
    a directory already scanned (``..``, a sibling) to ``scan.ignored``. Each real directory is scanned
    at most once, so links can make neither a loop nor duplicates.
    """
    found = []
    stack = [directory] if scan.enter(directory, top=True) else []
    while stack:
        here = stack.pop()
        subdirs = []
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError as exc:
            raise DataError(f"{here}: cannot list it ({exc.strerror}): fix its permissions or remove it") from None
        for e in entries:
            scan.count()
            if e.name.startswith("."):
                continue
            kind = _kind(e)
            path = Path(here) / e.name
            if kind == "dir":
                subdirs.append(path)
            elif kind == "file":
                (found if e.name.lower().endswith(IMAGE_SUFFIXES) else scan.skipped).append(path)
            else:
                scan.ignored.append(f"{path} ({kind})")
        stack += reversed([d for d in subdirs if scan.enter(d)])
    if not found:
        raise DataError(
            f"class folder {directory} has no images ({', '.join(IMAGE_SUFFIXES)}): add some or remove the folder"
        )
    return found


def _folder_cache_key(listing: _Listing, image_size: int | None, in_channels: int | None) -> str:
    h = hashlib.sha256(f"cnnzoo-folder-v{_FOLDER_CACHE_FORMAT}\0{listing.root}\0{image_size}\0{in_channels}\0".encode())
    for path, label in listing.files:
        try:
            st = path.stat()
        except OSError as exc:
            raise DataError(f"{path}: cannot read it ({exc.strerror})") from None
        h.update(f"{path.relative_to(listing.root)}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:20]


def _decode_folder(
    listing: _Listing, image_size: int | None, in_channels: int | None, max_bytes: int, progress: bool
) -> Tensor:
    paths = [path for path, _ in listing.files]
    workers = min(8, os.cpu_count() or 1) if len(paths) >= _THREADS_MIN else 1
    headers = list(_map_in_threads(_read_header, paths, workers))
    if in_channels is None:
        in_channels = 1 if all(gray for _, gray in headers) else 3
    if image_size is None:
        image_size = min(DEFAULT_MAX_SIDE, statistics.median_low(side for side, _ in headers))
    n = len(listing.files)
    need = n * in_channels * image_size * image_size
    if need > max_bytes:
        raise DataError(
            f"folder:{listing.root}: {n} images at {image_size}x{image_size} with {in_channels} channel(s) take "
            f"{_human_bytes(need)} as uint8, over the {_human_bytes(max_bytes)} budget: choose a smaller "
            "image size (--resize), grayscale, or fewer images"
        )

    def decode(path: Path) -> Tensor:
        try:
            return pictures.load_image(path, size=image_size, in_channels=in_channels, invert="no").pixels
        except ImageError as exc:
            raise DataCorruptError(f"{exc}; remove or replace the file") from None

    out = torch.empty((n, in_channels, image_size, image_size), dtype=torch.uint8)
    with _progress_bar(n, f"decoding {listing.root.name}", progress) as bar:
        for i, pixels in enumerate(_map_in_threads(decode, paths, workers)):
            out[i] = pixels
            bar.update(1)
    return out[:, 0] if in_channels == 1 else out


def _human_bytes(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _read_header(path: Path) -> tuple[int, bool]:
    """``(longer side, is grayscale)`` from the file's header; unreadable -> DataCorruptError naming it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                gray = _is_gray(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{path}: refused as a possible decompression bomb: shrink or remove it") from None
    except UnidentifiedImageError:
        raise DataCorruptError(f"{path}: not an image file PIL can read: remove or replace it") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DataCorruptError(f"{path}: cannot read it as an image ({_one_line(exc)}): remove or replace it") from None
    if width * height > pictures.MAX_PIXELS:
        raise DataError(
            f"{path}: {width}x{height} pixels is over the {pictures.MAX_PIXELS // 1_000_000}-megapixel limit "
            "(a decompression bomb?): shrink or remove it"
        )
    if (why := pictures.check_size(path, width, height)) is not None:
        raise DataError(f"{why}, or remove it")
    if width < 1 or height < 1:
        raise DataCorruptError(f"{path}: the image is empty ({width}x{height}): remove it")
    return max(width, height), gray


def _is_gray(img: Image.Image) -> bool:
    if img.mode in _GRAY_MODES:
        return True
    if img.mode in ("P", "PA"):
        palette = img.getpalette() or []
        return all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette) - 2, 3))
    return False


def _map_in_threads(fn: Any, items: Sequence[Path], workers: int) -> Iterator[Any]:
    """``map(fn, items)`` in order; PIL releases the GIL while it decodes and resizes."""
    if workers <= 1:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        yield from pool.map(fn, items)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on an error, do not decode the rest first


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _progress_bar(total: int, desc: str, progress: bool) -> Any:
    if not progress or total < _PROGRESS_MIN:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="img", leave=False, disable=None)  # None: only on a terminal


def _stratified_split(labels: Tensor, num_classes: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Train and test indices: ``round(fraction * n)`` of each class, at least 1 and at most ``n - 1``.

    Each class draws from its own stream seeded with ``(seed, class)``, so adding a class leaves the split
    of the others unchanged.
    """
    y = labels.numpy()
    test = []
    for c in range(num_classes):
        idx = np.flatnonzero(y == c)
        k = 0 if len(idx) < 2 else min(len(idx) - 1, max(1, round(fraction * len(idx))))
        test.append(np.random.default_rng([seed, c]).permutation(idx)[:k])
    test_idx = np.sort(np.concatenate(test)) if test else np.empty(0, dtype=np.int64)
    train_mask = np.ones(len(y), dtype=bool)
    train_mask[test_idx] = False
    return torch.from_numpy(np.flatnonzero(train_mask)), torch.from_numpy(test_idx.astype(np.int64))


def _read_folder_cache(path: Path, n: int) -> Tensor | None:
    """The cached images, or None: missing, damaged, of another format, or their digest differs."""
    blob = read_decoded(path)
    if blob is None or blob.get("format") != _FOLDER_CACHE_FORMAT:
        return None
    images = blob["tensors"].get("images")
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.dim() not in (3, 4):
        return None
    return images if images.shape[0] == n else None


def _write_folder_cache(path: Path, images: Tensor) -> None:
    """One entry per folder is kept (see :func:`cnnzoo.data.cache.write_decoded`)."""
    write_decoded(path, {"format": _FOLDER_CACHE_FORMAT}, {"images": images})
