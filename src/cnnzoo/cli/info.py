"""``cnnzoo data``, ``cnnzoo models`` and ``cnnzoo summary``: what is there, before anything trains."""

from __future__ import annotations

import argparse


def add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="find, verify and describe Fashion-MNIST (or download it with --fetch)",
        description="Show where Fashion-MNIST was found, its checksum status and per-class counts.",
    )
    p.add_argument("--root", help="directory holding the four IDX files (.gz or raw)")
    p.add_argument("--fetch", action="store_true", help="download the dataset into the user cache first")
    p.set_defaults(func=cmd_data)


def cmd_data(args: argparse.Namespace) -> int:
    from cnnzoo.data import fetch_fashion_mnist, load_fashion_mnist

    if args.fetch:
        path = fetch_fashion_mnist(args.root)
        print(f"fetched into {path}")
    ds = load_fashion_mnist(args.root, download=False)
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


def add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list every model with its input size, parameters and MACs")
    p.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from cnnzoo.inspection import format_models_table, models_table

    print(format_models_table(models_table()))
    print("\ninput: the default input size (the CLI resizes to it); accepts: the input sides the network takes.")
    print("params: 1 input channel, 10 classes; MACs: conv + linear multiply-accumulates, one image at input.")
    return 0


def add_summary(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="print a model's shape trace and per-layer table")
    p.add_argument("model")
    p.add_argument("--input-size", help="CxHxW (or H) — defaults to the model's own input size")
    p.add_argument("--depth", type=int, help="show modules nested at most this deep (default: all)")
    p.set_defaults(func=cmd_summary)


def cmd_summary(args: argparse.Namespace) -> int:
    import torch

    from cnnzoo.inspection import parse_input_size, shape_trace, summary
    from cnnzoo.registry import create_model, get_model_info

    get_model_info(args.model)  # an unknown name fails here, with close matches, before any parsing
    size = parse_input_size(args.input_size) if args.input_size else None
    # Shapes, parameter counts and MACs need no real weights: build on the meta device (instant, no memory).
    with torch.device("meta"):
        model = create_model(args.model, in_channels=size[0] if size else 1)
    print(shape_trace(model, size))
    print()
    print(summary(model, size, depth=args.depth))
    return 0
