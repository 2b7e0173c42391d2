"""Publish a named weight from finished runs (the maintainers' tool; users run `cnnzoo weights build`).

    python benchmarks/weights/publish.py RUN_DIR [RUN_DIR ...] --storage fp16 --shipped \
        --command "cnnzoo train lenet_bn --seed {seed}" [--note TEXT ...] [--load idle|loaded]

The runs are seeds of one command. Each seed's best.pt (chosen on validation) is evaluated again in fp32; the
seed with the best validation accuracy becomes the file, stored as --storage. It writes the file (into the
package when --shipped, else into the user cache, where `cnnzoo weights` finds it), replaces the weight's
entry in src/cnnzoo/weights/catalog.json, draws the card's pictures into docs/weights/images/ and regenerates
docs/weights/NAME.md and docs/weights.md from the catalog.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cnnzoo.base.atomic import atomic_write_bytes, atomic_write_text
from cnnzoo.run import load_data
from cnnzoo.weights import catalog
from cnnzoo.weights.cards import draw_card_images, write_cards
from cnnzoo.weights.files import cached_file
from cnnzoo.weights.publish import publish_runs, read_seed_run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*", type=Path)
    p.add_argument("--cards-only", action="store_true", help="only regenerate the cards and the table")
    p.add_argument("--add-bounds", action="store_true",
                   help="add the low-confidence bound (from the validation split) to entries that lack it")  # fmt: skip
    p.add_argument("--storage", choices=("fp32", "fp16", "int8"), default="fp16")
    p.add_argument("--shipped", action="store_true", help="the file goes into the package")
    p.add_argument("--command", default="", help="the cnnzoo train command of one seed ({seed} for the seed)")
    p.add_argument("--note", action="append", default=[], help="a line for the card's notes")
    p.add_argument("--load", default="idle", help="what else the machine ran while training")
    args = p.parse_args(argv)
    if args.add_bounds:
        return add_bounds()
    if args.cards_only or not args.runs:
        print("\n".join(str(path) for path in write_cards()))
        return 0

    if not args.command:
        sys.exit("error: --command: give the cnnzoo train command of one seed ({seed} for the seed)")
    first = read_seed_config(args.runs[0])
    data = load_data(first)
    runs = [read_seed_run(r, data) for r in args.runs]
    seeds = {r.config.seed for r in runs}
    others = {json.dumps({**r.config.to_dict(), "seed": 0}, sort_keys=True) for r in runs}
    if len(seeds) != len(runs) or len(others) != 1:
        sys.exit("error: the runs must be seeds of one command (same config but --seed, each seed once)")
    entry, blob = publish_runs(runs, data, storage=args.storage, shipped=args.shipped, command=args.command,
                               notes=args.note, load=args.load)  # fmt: skip
    target = catalog.FILES_DIR / entry["file"] if args.shipped else cached_file(catalog.Weight.from_dict(entry))
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, blob)
    others = [e for e in _read_catalog() if e["name"] != entry["name"]]
    # MODEL.DATASET names one weight: the first published of that model on that dataset keeps the name
    entry["default"] = not any(e["default"] and (e["model"], e["dataset"]) == (entry["model"], entry["dataset"])
                               for e in others)  # fmt: skip
    entries = [*others, entry]
    entries.sort(key=lambda e: e["name"])
    text = json.dumps({"format": 1, "weights": entries}, indent=1, sort_keys=True) + "\n"
    atomic_write_text(catalog.CATALOG, text)
    catalog._catalog.cache_clear()
    chosen = next(r for r in runs if r.config.seed == entry["meta"]["seed"])
    draw_card_images(catalog.get_weight(entry["name"]), data, chosen.history)
    write_cards()
    m = entry["meta"]
    print(f"{entry['name']}: test {m['test_acc']:.4f} (fp32 checkpoint {m['full_precision_test_acc']:.4f}), "
          f"val {m['val_acc']:.4f}, seeds {m['test_acc_mean']:.4f} +- {m['test_acc_std'] or 0:.4f}, "
          f"{entry['bytes']:,} bytes {entry['storage']} -> {target}")  # fmt: skip
    return 0


def add_bounds() -> int:
    """Each weight without meta.low_confidence (published before it was recorded) gets it: its file evaluated
    in fp32 on its validation split one view at a time, as publish_runs does."""
    from cnnzoo.train.checkpoint import model_from_checkpoint
    from cnnzoo.train.config import config_from_dict
    from cnnzoo.weights.files import weight_checkpoint
    from cnnzoo.weights.publish import single_view_bound

    entries = _read_catalog()
    for entry in entries:
        weight = catalog.Weight.from_dict(entry)
        if "low_confidence" in entry["meta"] or not weight_is_here(weight):
            continue
        config = config_from_dict(entry["config"])
        model = model_from_checkpoint(weight_checkpoint(weight))
        entry["meta"]["low_confidence"] = single_view_bound(model, load_data(config), config)
        print(f"{entry['name']}: low-confidence bound {entry['meta']['low_confidence']} (one view a time)")
    text = json.dumps({"format": 1, "weights": entries}, indent=1, sort_keys=True) + "\n"
    atomic_write_text(catalog.CATALOG, text)
    return 0


def weight_is_here(weight) -> bool:
    return (catalog.FILES_DIR / weight.file).is_file() or cached_file(weight).is_file()


def read_seed_config(run: Path):
    from cnnzoo.train.config import config_from_dict

    return config_from_dict(json.loads((run / "config.json").read_text())["config"])


def _read_catalog() -> list[dict]:
    if not catalog.CATALOG.exists():
        return []
    return json.loads(catalog.CATALOG.read_text(encoding="utf-8"))["weights"]


if __name__ == "__main__":
    sys.exit(main())
