"""Errors a user can cause.

Every exception here carries a one-line message that names the thing that is wrong and how to fix it.
The CLI prints ``error: <message>`` and exits with status 2 for any :class:`CnnzooError`; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class CnnzooError(Exception):
    """Base class of every user-caused error (the CLI maps it to exit status 2)."""


class DataError(CnnzooError):
    """A dataset could not be found, read or verified."""


class DataNotFoundError(DataError):
    """The dataset is in none of the places looked and could not be downloaded."""


class DataCorruptError(DataError):
    """A data file exists but is truncated, malformed or fails its checksum."""


class IdxFormatError(DataCorruptError):
    """Bytes that are not a valid IDX file (bad magic, dtype code, size or trailing data)."""


class ModelError(CnnzooError):
    """A model cannot be built or run as asked."""


class UnknownModelError(ModelError, ValueError):
    """No model is registered under that name."""


class InputTooSmallError(ModelError, ValueError):
    """The input image is smaller than the model's minimum input size."""


class ConfigError(CnnzooError, ValueError):
    """An invalid or conflicting training/CLI setting."""


class CheckpointError(CnnzooError):
    """A checkpoint is missing, truncated, unsafe or belongs to another model."""


class ImageError(CnnzooError):
    """An image file could not be read as an image (missing, empty, corrupt, animated, too large)."""


class FileWriteError(CnnzooError, OSError):
    """A file could not be written (disk full, read-only, no permission); the previous version is left intact.

    Also an :class:`OSError` (``errno`` is set), so best-effort writers that ignore ``OSError`` keep doing so.
    """


class TrainingDivergedError(CnnzooError):
    """The training loss became NaN or infinite (usually a learning rate that is too high)."""


class MissingExtraError(CnnzooError):
    """An optional package a feature needs is not installed; the message names the pip extra to install."""


class OutputError(ConfigError):
    """A path cnnzoo was asked to write holds something that is not its own to replace (a user's file, a
    checkpoint, a directory, an input of the same command, a non-empty directory that is not a run)."""


class RunLockedError(CnnzooError):
    """A run directory is being trained by another live process (it holds the directory's ``.lock``)."""


class MetricsFileError(DataCorruptError, ValueError):
    """A run's metrics.jsonl is damaged (a line that is not JSON, a row without its numbers); also a
    :class:`ValueError`, so code that rebuilds the file from the checkpoint's history keeps catching it."""


class ArgumentTypeError(CnnzooError, TypeError):
    """A Python API argument of the wrong type (``new_run(None)``, ``predict(top_k=2.5)``): named, with the fix,
    before it reaches torch."""
