"""Re-check the fast recipes' learning rates on the validation split (issue 14): for each model, train the fast
recipe at its learning rate and at half and twice it, and print the last epoch's validation accuracy.

The test set is not printed: this is the choice, and the test set never takes part in it.

    .venv/bin/python benchmarks/recipes/recheck.py [MODEL ...]      # default: lenet_bn lenet
    FACTORS=4 .venv/bin/python benchmarks/recipes/recheck.py lenet   # other multiples of the recipe's lr
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch

import cnnzoo
from cnnzoo.run.environment import cpu_model
from cnnzoo.train.recipes import recipe_values


def main(models: list[str]) -> None:
    print(f"# fast-recipe learning rates on validation; {cpu_model()}, torch {torch.__version__}")
    data = None
    for model in models:
        base = recipe_values("fast", model)["lr"]
        for factor in [float(f) for f in os.environ.get("FACTORS", "0.5 1 2").split()]:
            lr = base * factor
            run = cnnzoo.new_run(model, overrides={"lr": lr, "device": "cpu"}, data=data)
            data = run.data  # loaded (and split) once
            start = time.perf_counter()
            history = run.fit()
            row = history[-1]
            print(json.dumps({"model": model, "lr": lr, "recipe_lr": base, "epochs": len(history),
                              "val_acc_last": round(row["val_acc"], 4),
                              "val_acc_max": round(max(r["val_acc"] for r in history), 4),
                              "wall_s": round(time.perf_counter() - start, 1)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:] or ["lenet_bn", "lenet"])
