"""Time the example notebooks top to bottom with their real settings (not the tests' smoke settings).

    python benchmarks/notebooks.py [--out notebooks-timing.json] [--executed DIR]

Each notebook runs in a fresh Jupyter kernel on this interpreter, in a temporary working directory, as a reader
would run it; the total wall time and each tagged cell's own time are printed and written as JSON. With
``--executed DIR`` the executed notebooks (with their outputs) are saved there for a look.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOKS = ("modern_cnns.ipynb", "your_own_images.ipynb")


class _ThisInterpreter(KernelSpecManager):
    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        return KernelSpec(argv=argv, display_name="Python", language="python")


def _seconds(cell) -> float | None:
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not end:
        return None
    parse = dt.datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def time_notebook(name: str, executed: Path | None) -> dict:
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    with tempfile.TemporaryDirectory(prefix="cnnzoo-nb-") as work:
        client = NotebookClient(nb, km=KernelManager(kernel_spec_manager=_ThisInterpreter()), timeout=1800,
                                resources={"metadata": {"path": work}}, record_timing=True)  # fmt: skip
        start = time.perf_counter()
        client.execute()
        total = time.perf_counter() - start
    if executed is not None:
        executed.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, executed / name)
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            tags = cell.metadata.get("tags", [])
            cells.append({"tag": tags[0] if tags else None, "seconds": _seconds(cell)})
    return {"notebook": name, "seconds": total, "cells": cells}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("notebooks-timing.json"))
    p.add_argument("--executed", type=Path)
    args = p.parse_args()
    results = []
    for name in NOTEBOOKS:
        result = time_notebook(name, args.executed)
        results.append(result)
        print(f"{name}: {result['seconds']:.0f} s")
        for cell in result["cells"]:
            if cell["tag"] and (cell["seconds"] or 0) >= 1:
                print(f"  {cell['tag']:<20} {cell['seconds']:.1f} s")
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
