"""``cnnzoo data``, ``cnnzoo models`` and ``cnnzoo summary``: what is there, before anything trains."""

from __future__ import annotations

import argparse

import cnnzoo.data as data_mod  # as a module: tests swap its loader for a fake dataset
from cnnzoo.models.inspection import format_models_table, models_table, parse_input_size, shape_trace, summary
from cnnzoo.models.registry import create_model, get_model_info

__all__ = ["cmd_data", "cmd_models", "cmd_summary"]


def cmd_data(args: argparse.Namespace) -> int:
    if args.fetch:
        path = data_mod.fetch_fashion_mnist(args.root)
        print(f"fetched into {path}")
    ds = data_mod.load_fashion_mnist(args.root, download=False)
    print(f"dataset:   {ds.name}")
    print(f"found in:  {ds.source}")
    how = ds.extra.get("verified_by", "MD5 of the uncompressed content")
    print(f"checksums: {f'verified ({how})' if ds.verified else 'NOT verified'}")
    print(f"train:     {tuple(ds.train_images.shape)} uint8, test: {tuple(ds.test_images.shape)} uint8")
    train, test = ds.class_counts("train"), ds.class_counts("test")
    width = max(len(c) for c in ds.classes)
    print(f"\n{'label':>5}  {'class':<{width}}  {'train':>6}  {'test':>6}")
    for i, name in enumerate(ds.classes):
        print(f"{i:>5}  {name:<{width}}  {train[i]:>6}  {test[i]:>6}")
    print(f"{'':>5}  {'total':<{width}}  {sum(train):>6}  {sum(test):>6}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    print(format_models_table(models_table()))
    print("\ninput: the default input size (the CLI resizes to it); accepts: the input sides the network takes.")
    print("params: 1 input channel, 10 classes; MACs: conv + linear multiply-accumulates, one image at input.")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    import torch

    get_model_info(args.model)  # an unknown name fails here, with close matches, before any parsing
    size = parse_input_size(args.input_size) if args.input_size else None
    # Shapes, parameter counts and MACs need no real weights: build on the meta device (instant, no memory).
    with torch.device("meta"):
        model = create_model(args.model, in_channels=size[0] if size else 1)
    print(shape_trace(model, size))
    print()
    print(summary(model, size, depth=args.depth))
    return 0
