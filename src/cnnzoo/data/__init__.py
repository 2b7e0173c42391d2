"""Data layer: IDX parsing, Fashion-MNIST sources and checksums, and the device-resident batches."""

from cnnzoo.data.batches import Augment, DeviceBatches, ModelView, channel_stats
from cnnzoo.data.dataset import ImageDataset, auto_validation_size, hold_out_validation
from cnnzoo.data.datasets import MNIST_LIKE, dataset_name, list_datasets, load_dataset
from cnnzoo.data.fashion_mnist import FASHION_MNIST_CLASSES, fetch_fashion_mnist, load_fashion_mnist

__all__ = [
    "FASHION_MNIST_CLASSES",
    "MNIST_LIKE",
    "Augment",
    "DeviceBatches",
    "ImageDataset",
    "ModelView",
    "auto_validation_size",
    "channel_stats",
    "dataset_name",
    "fetch_fashion_mnist",
    "hold_out_validation",
    "list_datasets",
    "load_dataset",
    "load_fashion_mnist",
]
