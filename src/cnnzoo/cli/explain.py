"""``cnnzoo explain``: what a trained network looks at, what its stages make of a picture, what it gets wrong."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnzoo.errors import ConfigError, OutputError
from cnnzoo.outputs import claim_output


def add_explain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="class-activation maps, feature maps and filters of a trained run; its most confident mistakes",
        description="For each picture (prepared as cnnzoo predict prepares it): <name>-cam.png, the picture as the "
        "model sees it with a Grad-CAM map of where the evidence for a class lies and the top classes, and "
        "<name>-features.png, every stage's feature maps (the shape trace made visible); once, filters.png, the "
        "first convolution's kernels. --top-losses draws the test images the model is most confidently wrong "
        "about, --class-grid a fixed sample of each class. Files go to RUN_DIR/explain/ (for a weight, "
        "./explain-WEIGHT/) unless --out says.",
    )
    p.add_argument(
        "checkpoint",
        metavar="RUN_DIR|CKPT|WEIGHT",
        help="a run directory (its last.pt), a checkpoint file, or a weight's name (cnnzoo weights)",
    )
    p.add_argument("images", metavar="IMAGE", nargs="*", help="image files, directories of images, or glob patterns")
    p.add_argument(
        "--target",
        nargs="+",
        action="extend",
        metavar="CLASS",
        help="class names or indices to map (after the images; default: the predicted class)",
    )
    p.add_argument("--top-k", type=int, default=3, metavar="K", help="classes listed beside each map (default 3)")
    p.add_argument("--out", metavar="DIR", help="where the PNGs go (default: RUN_DIR/explain/, or ./explain-WEIGHT/)")
    p.add_argument(
        "--top-losses", action="store_true", help="the test images the model is most confidently wrong about"
    )
    p.add_argument("--count", type=int, default=16, metavar="N", help="images in the --top-losses gallery (default 16)")
    p.add_argument("--class-grid", action="store_true", help="a seeded sample of 8 test images of every class")
    p.add_argument("--invert", choices=("auto", "yes", "no"), help="polarity of your pictures, as in cnnzoo predict")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-root", metavar="DIR", help="where the run's dataset is (as given to train)")
    p.add_argument("--force", action="store_true", help="replace files in --out that cnnzoo did not write")
    p.set_defaults(func=cmd_explain)


def cmd_explain(args: argparse.Namespace) -> int:
    from cnnzoo.explain.files import explain_images, parse_targets, prepare_out_dir
    from cnnzoo.predictor import expand_images, load_model

    if not (args.images or args.top_losses or args.class_grid):
        raise ConfigError("nothing to explain: give IMAGE files, --top-losses or --class-grid")
    if args.count < 1:
        raise ConfigError(f"--count {args.count}: must be at least 1")
    if args.out is not None and not str(args.out).strip():  # Path("") is the working directory
        raise OutputError("--out is empty (an unset variable?): give a directory for the figures")
    predictor = load_model(args.checkpoint, device=args.device, invert=args.invert)
    if args.out is not None:
        out = args.out
    else:  # a run's explain/ folder; for a weight (whose file is the package's), explain-NAME/ here
        out = Path(f"explain-{predictor.weight}") if predictor.weight else predictor.checkpoint.parent / "explain"
    out = prepare_out_dir(out)
    targets = parse_targets(args.target, predictor.classes)
    paths = expand_images(args.images)
    gallery = claim_output(out / "top_losses.png", "png", flag="--out", force=args.force) if args.top_losses else None
    grid = claim_output(out / "class_grid.png", "png", flag="--out", force=args.force) if args.class_grid else None
    if paths:
        records, filters = explain_images(predictor, paths, out, targets=targets, top_k=args.top_k, force=args.force)
        for r in records:
            label, probability = r.top[0]
            print(f"{r.image}: {label} {probability:.1%} -> {', '.join(str(f) for f in r.files)}")
        print(f"first-layer filters: {filters}")
    if gallery is not None or grid is not None:
        _write_test_figures(args, predictor, out, gallery, grid)
    return 0


def _write_test_figures(args, predictor, out: Path, gallery: Path | None, grid: Path | None) -> None:
    from cnnzoo.explain.files import write_class_grid, write_top_losses
    from cnnzoo.run import open_run

    data = open_run(args.checkpoint, data_root=args.data_root).data  # the run's test split, as cnnzoo eval has it
    out.mkdir(exist_ok=True)
    if gallery is not None:
        mistakes = write_top_losses(
            predictor.model, data.test_images, data.test_labels, gallery, classes=predictor.classes,
            mean=predictor.mean, std=predictor.std, input_size=predictor.input_size, count=args.count,
            title=f"the {{n}} test images the model is most confidently wrong about ({predictor.name})",
        )  # fmt: skip
        total = data.test_labels.numel()
        print(f"top losses: the {len(mistakes)} most confident mistakes on {total} test images -> {gallery}")
    if grid is not None:
        write_class_grid(data.test_images, data.test_labels, grid, classes=predictor.classes)
        print(f"class grid: {grid}")
