"""Fashion-MNIST: find the four IDX files, verify them, decode them once, download them if asked.

Where the files are looked for, first hit wins (a hit is a directory holding all four files, each
``.gz`` or raw; a torchvision-style ``FashionMNIST/raw`` below it counts too):

1. the explicit ``root`` argument (then nothing else is tried);
2. ``$CNNZOO_DATA``;
3. the user cache, ``$XDG_CACHE_HOME/cnnzoo/fashion-mnist`` (``~/.cache/...``);
4. ``/usr/share/datasets/fashion-mnist`` (Debian/Ubuntu package ``dataset-fashion-mnist``);
5. a download from the official mirror into the cache (or into ``root``), when ``download=True``.

Each file is checked against the MD5 of its *uncompressed* content: Debian re-gzips the files, so the
compressed bytes differ while the content is identical. The decoded tensors are cached in the user
cache under a key made of every source file's path, size and modification time, so a second load is a
single ``torch.load`` and a changed file is verified again; the cache carries a digest of its tensors, so
a cache whose content changed on disk is decoded again. Files the user put somewhere are only ever read;
downloads go to a temporary file that is renamed into place only once complete and verified, and removed
on every other exit. A download is bounded by :data:`DOWNLOAD_DEADLINE`, :data:`MIN_RATE` (over
:data:`RATE_WINDOW`) and :data:`MAX_DOWNLOAD_BYTES`; reading is bounded as :mod:`cnnzoo.data.idx` says.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnzoo.base.errors import DataCorruptError, DataError, DataNotFoundError
from cnnzoo.data.cache import cache_dir, read_decoded, write_decoded
from cnnzoo.data.dataset import ImageDataset
from cnnzoo.data.download import Limits, reason, stream
from cnnzoo.data.idx import MAX_IDX_BYTES, read_idx, read_maybe_gzip

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FILES",
    "MIRRORS",
    "SYSTEM_DIR",
    "fetch_fashion_mnist",
    "find_fashion_mnist",
    "load_fashion_mnist",
]

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip


@dataclass(frozen=True)
class _File:
    key: str
    stem: str
    md5: str  # of the uncompressed content
    shape: tuple[int, ...]


FILES = (
    _File("train_images", "train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a", (60000, 28, 28)),
    _File("train_labels", "train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9", (60000,)),
    _File("test_images", "t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a", (10000, 28, 28)),
    _File("test_labels", "t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965", (10000,)),
)
MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
_CACHE_FORMAT = 1  # a cache without a digest (written before it had one) is decoded again anyway
#: Downloads: each file from one mirror must arrive within DOWNLOAD_DEADLINE seconds, and at least
#: MIN_RATE bytes per second averaged over every RATE_WINDOW seconds (a mirror that trickles is abandoned);
#: a body longer than MAX_DOWNLOAD_BYTES is refused. Tests lower them.
DOWNLOAD_DEADLINE = 1800.0
MIN_RATE = 16 * 1024
RATE_WINDOW = 60.0
MAX_DOWNLOAD_BYTES = MAX_IDX_BYTES
_FIXES = (
    "fix: `sudo apt-get install dataset-fashion-mnist`, or put the four official files "
    "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz) in a directory and set CNNZOO_DATA to it"
)


def _files_in(directory: Path) -> dict[str, Path] | None:
    """The four files found in ``directory`` (or its ``FashionMNIST/raw``), else None."""
    for d in (directory, directory / "FashionMNIST" / "raw"):
        found = {}
        for f in FILES:
            for name in (f.stem, f.stem + ".gz"):
                if (d / name).is_file():
                    found[f.key] = d / name
                    break
        if len(found) == len(FILES):
            return found
    return None


def _candidates(root: str | os.PathLike[str] | None) -> list[tuple[str, Path]]:
    if root is not None:
        return [("root argument", Path(root).expanduser())]
    places = []
    if os.environ.get("CNNZOO_DATA"):
        places.append(("$CNNZOO_DATA", Path(os.environ["CNNZOO_DATA"]).expanduser()))
    places.append(("user cache", cache_dir("fashion-mnist")))
    places.append(("system package", SYSTEM_DIR))
    return places


def find_fashion_mnist(root: str | os.PathLike[str] | None = None) -> tuple[Path, dict[str, Path]] | None:
    """The first place holding all four files, as ``(directory, {key: path})``; None if none does."""
    for _, directory in _candidates(root):
        files = _files_in(directory)
        if files is not None:
            return directory, files
    return None


def load_fashion_mnist(root: str | os.PathLike[str] | None = None, download: bool = True) -> ImageDataset:
    """Load Fashion-MNIST as uint8 tensors: ``train_images`` [60000, 28, 28], ``train_labels`` [60000], ...

    Raises :class:`~cnnzoo.base.errors.DataNotFoundError` (every place looked and the two fixes) or
    :class:`~cnnzoo.base.errors.DataCorruptError` (which file, what is wrong).
    """
    if root is not None and Path(root).expanduser().is_file():
        raise DataNotFoundError(f"{root} is a file: give the directory that holds the four Fashion-MNIST files")
    hit = find_fashion_mnist(root)
    if hit is None:
        places = _candidates(root)
        if not download:
            raise DataNotFoundError(_not_found_message(places, None))
        target = Path(root).expanduser() if root is not None else cache_dir("fashion-mnist")
        try:
            fetch_fashion_mnist(target)
        except DataNotFoundError as exc:
            raise DataNotFoundError(_not_found_message(places, getattr(exc, "reason", str(exc)))) from None
        hit = find_fashion_mnist(root) or (target, _files_in(target))
    directory, files = hit
    return _load_verified(directory, files)


def _not_found_message(places: Sequence[tuple[str, Path]], download_error: str | None) -> str:
    looked = "; ".join(f"{label} {path}{_partial(path)}" for label, path in places)
    tail = (
        f"; download failed: {download_error}"
        if download_error
        else "; download not attempted: `cnnzoo data --fetch` tries it"
    )
    return f"Fashion-MNIST not found (looked in: {looked}{tail}); {_FIXES}"


def _partial(directory: Path) -> str:
    if not directory.is_dir():
        return " (no such directory)"
    present = [f.stem for f in FILES if (directory / f.stem).is_file() or (directory / (f.stem + ".gz")).is_file()]
    return f" (only {len(present)} of 4 files)" if present else " (no files)"


# -- verified, decoded, cached -----------------------------------------------------------------
def _cache_key(files: dict[str, Path]) -> str:
    h = hashlib.sha256(f"cnnzoo-fashion-mnist-v{_CACHE_FORMAT}".encode())
    for f in FILES:
        p = files[f.key].resolve()
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:20]


def _load_verified(directory: Path, files: dict[str, Path]) -> ImageDataset:
    key = _cache_key(files)
    cached = cache_dir("fashion-mnist") / f"decoded-{key}.pt"
    tensors = _read_cache(cached)
    how = "decoded cache, digest checked"
    if tensors is None:
        tensors = _decode_and_verify(files)
        _write_cache(cached, tensors)
        how = "MD5 of the uncompressed content, checked now"
    return ImageDataset(
        name="fashion-mnist",
        classes=list(FASHION_MNIST_CLASSES),
        source=str(directory),
        verified=True,
        extra={"verified_by": how},
        **tensors,
    )


def _decode_and_verify(files: dict[str, Path]) -> dict[str, torch.Tensor]:
    """Read all four (each bounded by its header), check the label ranges, then every MD5."""
    read = {f.key: read_idx(files[f.key]) for f in FILES}
    for f in FILES:
        if f.key.endswith("_labels"):
            _check_labels(files[f.key], read[f.key][0])
    arrays = {}
    for f in FILES:
        path, (array, md5) = files[f.key], read[f.key]
        if md5 != f.md5:
            raise DataCorruptError(
                f"{path}: checksum mismatch (MD5 of uncompressed content {md5}, expected {f.md5}); "
                "the file is damaged or not the official Fashion-MNIST, replace it"
            )
        if array.shape != f.shape or array.dtype != np.uint8:  # unreachable when the MD5 matched
            raise DataCorruptError(f"{path}: shape {array.shape} {array.dtype}, expected {f.shape} uint8")
        arrays[f.key] = array
    tensors = {k: torch.from_numpy(a) for k, a in arrays.items()}
    for split in ("train", "test"):
        tensors[f"{split}_labels"] = tensors[f"{split}_labels"].long()
    return tensors


def _check_labels(path: Path, labels: np.ndarray) -> None:
    top = len(FASHION_MNIST_CLASSES) - 1
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) > top):
        raise DataCorruptError(
            f"{path}: labels outside 0..{top} (found {int(labels.min())}..{int(labels.max())}); "
            "the file is damaged or not Fashion-MNIST's, replace it"
        )


def _read_cache(path: Path) -> dict[str, torch.Tensor] | None:
    """The cached tensors, or None: missing, damaged, of another format, or their digest differs."""
    blob = read_decoded(path)
    if blob is None or blob.get("format") != _CACHE_FORMAT:
        return None
    tensors = blob["tensors"]
    if any(not isinstance(tensors.get(f.key), torch.Tensor) or tuple(tensors[f.key].shape) != f.shape for f in FILES):
        return None
    return tensors


def _write_cache(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    write_decoded(path, {"format": _CACHE_FORMAT}, tensors)


# -- download ----------------------------------------------------------------------------------
def _mirrors() -> list[str]:
    env = os.environ.get("CNNZOO_MIRROR")
    mirrors = [m.strip() for m in env.split(",") if m.strip()] if env else list(MIRRORS)
    return [m if m.endswith("/") else m + "/" for m in mirrors]


def fetch_fashion_mnist(
    root: str | os.PathLike[str] | None = None,
    *,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download the four files into ``root`` (default: the user cache) and return that directory.

    Files already present and verified are kept. Each download streams into a temporary file beside
    its target and is renamed into place only after its size and uncompressed MD5 check out, so an
    interrupted download never leaves a file that later passes as good. An existing file is never
    overwritten: a damaged one raises :class:`DataCorruptError` naming it.
    ``$CNNZOO_MIRROR`` (comma-separated base URLs) replaces the official mirror.
    """
    target = Path(root).expanduser() if root is not None else cache_dir("fashion-mnist")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {target}: {exc.strerror}; choose a writable --root") from None
    bases = list(mirrors) if mirrors is not None else _mirrors()
    for f in FILES:
        for name in (f.stem + ".gz", f.stem):
            if (target / name).is_file():
                _verify_file(target / name, f)
                break
        else:
            try:
                _download_one(f, target, bases, timeout, progress)
            except DataNotFoundError as exc:
                error = DataNotFoundError(
                    f"could not download Fashion-MNIST into {target} ({exc}): check the network, or set "
                    f"CNNZOO_MIRROR to a mirror that works; {_FIXES}"
                )
                error.reason = str(exc)  # what load_fashion_mnist reports among the places it looked
                raise error from None
    return target


def _verify_file(path: Path, f: _File) -> None:
    md5 = hashlib.md5(read_maybe_gzip(path)).hexdigest()
    if md5 != f.md5:
        raise DataCorruptError(
            f"{path}: checksum mismatch (MD5 of uncompressed content {md5}, expected {f.md5}); "
            "it was left untouched: remove or replace it, then fetch again"
        )


def _download_one(f: _File, target: Path, bases: Sequence[str], timeout: float, progress: bool) -> None:
    errors = []
    for base in bases:
        url = base + f.stem + ".gz"
        tmp = None
        try:  # the temporary file goes on every exit: an error, Ctrl-C, SystemExit
            fd, tmp_name = tempfile.mkstemp(dir=target, prefix=f".{f.stem}.", suffix=".part")
            tmp = Path(tmp_name)
            with os.fdopen(fd, "wb") as out:
                _stream(url, out, timeout, progress, f.stem + ".gz")
            _verify_file(tmp, f)
            final = target / (f.stem + ".gz")
            if final.exists():  # appeared meanwhile (another process): keep theirs
                return
            os.replace(tmp, final)
            return
        except (OSError, ValueError, http.client.HTTPException, DataError) as exc:  # ValueError: a malformed URL
            errors.append(f"{url}: {reason(exc)}")
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
    raise DataNotFoundError("; ".join(errors))


def _stream(url: str, out, timeout: float, progress: bool, label: str) -> None:
    # The limits are read at each call, so they can be changed (tests make them small).
    limits = Limits(deadline=DOWNLOAD_DEADLINE, min_rate=MIN_RATE, window=RATE_WINDOW, max_bytes=MAX_DOWNLOAD_BYTES)
    stream(url, out, limits=limits, timeout=timeout, progress=progress, label=label)
