"""``cnnzoo explain``: what a trained network looks at, what its stages make of a picture, what it gets wrong."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnzoo.base.errors import ConfigError, OutputError
from cnnzoo.base.outputs import claim_output
from cnnzoo.explain.files import explain_images, parse_targets, prepare_out_dir, write_class_grid, write_top_losses
from cnnzoo.run import open_run
from cnnzoo.serve.predictor import expand_images, load_model

__all__ = ["cmd_explain"]


def cmd_explain(args: argparse.Namespace) -> int:
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
    data = open_run(args.checkpoint, data_root=args.data_root).data  # the run's test split, as cnnzoo eval has it
    out.mkdir(exist_ok=True)
    if gallery is not None:
        mistakes = write_top_losses(
            predictor.model, data.test_images, data.test_labels, gallery, classes=predictor.classes,
            view=predictor.view, count=args.count,
            title=f"the {{n}} test images the model is most confidently wrong about ({predictor.name})",
        )  # fmt: skip
        total = data.test_labels.numel()
        print(f"top losses: the {len(mistakes)} most confident mistakes on {total} test images -> {gallery}")
    if grid is not None:
        write_class_grid(data.test_images, data.test_labels, grid, classes=predictor.classes)
        print(f"class grid: {grid}")
