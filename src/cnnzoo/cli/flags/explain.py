"""The flags of ``cnnzoo explain`` (what the command does is in :mod:`cnnzoo.cli.explain`)."""

from __future__ import annotations

import argparse

__all__ = ["add_explain"]


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
    p.set_defaults(func="cnnzoo.cli.explain:cmd_explain")
