"""The example notebooks run end to end in a real Jupyter kernel and show what they promise.

Both run with ``CNNZOO_NOTEBOOK_SMOKE=1`` (their own switch to a few images and one or a few epochs), in a kernel
on this interpreter, with a private cache and temp directory. ``modern_cnns.ipynb`` loads Fashion-MNIST through
the library as a user would; here that finds the tiny fake set of conftest's ``fake_fashion`` through
``$CNNZOO_DATA``, and a set-up cell the test puts in front of the notebook pins the fake files' checksums in the
kernel, as the fixture does in this process. ``your_own_images.ipynb`` makes its own synthetic image folder.
"""

from __future__ import annotations

import base64
import os
import re
import sys
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

import cnnzoo
from cnnzoo.data import fashion_mnist as fm

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAMILIES = ("alexnet", "vgg11", "nin", "googlenet", "resnet18", "densenet")
# What the markdown cell before each family's trace must explain (lower-cased).
EXPLAINED = {
    "alexnet": ("relu", "dropout", "224x224", "deeper and wider"),
    "vgg11": ("3x3 convolutions", "block", "max pool"),
    "nin": ("1x1 convolution", "global average pooling", "dense"),
    "googlenet": ("inception", "1x1", "bottleneck", "concatenated"),
    "resnet18": ("f(x) + x", "residual", "1x1 convolution", "gradient"),
    "densenet": ("concatenate", "transition", "growth rate"),
}


class _ThisInterpreter(KernelSpecManager):
    """Every kernel name means an IPython kernel on the Python running the tests (the venv with cnnzoo), whatever
    kernelspecs the machine has installed or lacks."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        return KernelSpec(argv=argv, display_name=f"Python ({sys.executable})", language="python")


def run_notebook(name: str, tmp_path: Path, env: dict[str, str], setup: str | None = None) -> nbformat.NotebookNode:
    """Execute ``examples/<name>`` in a fresh kernel (cwd and ``$TMPDIR`` under ``tmp_path``), with ``env`` added
    to its environment and ``setup`` run first; raises on the first failing cell."""
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name} is stored with outputs"
    if setup is not None:
        nb.cells.insert(0, nbformat.v4.new_code_cell(setup))
    work = tmp_path / "cwd"
    (tmp_path / "tmp").mkdir()
    work.mkdir()
    kernel_env = {**os.environ, "CNNZOO_NOTEBOOK_SMOKE": "1", "TMPDIR": str(tmp_path / "tmp"), **env}
    # One intra-op thread, as conftest gives each xdist worker: the suite is sized for two busy cores, and
    # two threads each in two processes on two cores run small models many times slower.
    kernel_env["OMP_NUM_THREADS"] = "1"
    client = NotebookClient(
        nb,
        km=KernelManager(kernel_spec_manager=_ThisInterpreter()),
        timeout=300,
        resources={"metadata": {"path": str(work)}},
    )
    client.execute(env=kernel_env)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    return nb


def tagged(nb: nbformat.NotebookNode, tag: str) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r}, found {len(cells)}"
    return cells[0]


def stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def displayed(cell: nbformat.NotebookNode, mime: str) -> list[str]:
    shown = ("display_data", "execute_result")
    return [o.data[mime] for o in cell.outputs if o.output_type in shown and mime in o.data]


def png_size(data: str) -> tuple[int, int]:
    """Width and height of a base64 PNG, from its IHDR chunk."""
    head = base64.b64decode(data[:44])
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_modern_cnns_notebook(fake_fashion, tmp_path):
    # fake_fashion: pinned checksums of the fake files (patched in this process), private cache, no system copy
    pinned = [(f.key, f.stem, f.md5, f.shape) for f in fm.FILES]
    setup = (
        "# test set-up, not part of the notebook: accept tests/conftest.py's tiny fake Fashion-MNIST\n"
        "from pathlib import Path\n"
        "from cnnzoo.data import fashion_mnist as _fm\n"
        f"_fm.FILES = tuple(_fm._File(*f) for f in {pinned!r})\n"
        f"_fm.SYSTEM_DIR = Path({str(fm.SYSTEM_DIR)!r})\n"
    )
    nb = run_notebook("modern_cnns.ipynb", tmp_path, {"CNNZOO_DATA": str(fake_fashion.directory)}, setup)

    # Every family's trace ends in the (1, 10) logits, as the book's traces do, and sits right after the
    # explanation of what the family changes.
    for family in FAMILIES:
        cell = tagged(nb, f"trace-{family}")
        trace = stdout(cell)
        assert trace.startswith(f"== {family}: "), trace
        assert trace.strip().splitlines()[-1].endswith("torch.Size([1, 10])"), trace
        explanation = nb.cells[nb.cells.index(cell) - 1]
        assert explanation.cell_type == "markdown", family
        for term in EXPLAINED[family]:
            assert term in explanation.source.lower(), (family, term)
    bn = next(c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## 7.5 Batch Norm"))
    for term in ("each channel over the batch", "gamma", "beta", "running averages", "model.eval()", "Animator"):
        assert term in bn, term
    lenet = stdout(tagged(nb, "lenet-trace"))
    assert "Sigmoid output shape:" in lenet
    assert lenet.split("\n\n")[0].splitlines()[-1] == "Linear output shape:\t torch.Size([1, 10])"
    assert "Total params:     61,706" in lenet  # LeNet-5 with 10 classes

    # The book's Inception table: 0.16M weights for the block, 0.44M and 1.23M for the plain convolutions.
    (table,) = displayed(tagged(nb, "cost-table"), "text/markdown")
    assert re.search(r"\| Inception\(192, 64, \(96, 128\), \(16, 32\), 32\) \| 0\.16M", table), table
    assert "| 3x3 conv, 192 -> 256 | 0.44M" in table and "| 5x5 conv, 192 -> 256 | 1.23M" in table

    # lenet_bn trained for the one smoke epoch, and the live plot drew its curves in the cell.
    train = tagged(nb, "train-lenet-bn")
    assert re.search(r"^epoch 1/1  loss \d+\.\d+", stdout(train), flags=re.M), stdout(train)
    pngs = displayed(train, "image/png")
    assert pngs and pngs[-1].startswith("iVBORw0KGgo")  # base64 of the PNG signature

    gamma_beta = stdout(tagged(nb, "gamma-beta"))
    assert "6 channels" in gamma_beta
    gamma = re.search(r"^gamma: \[(.*)\]$", gamma_beta, flags=re.M)
    assert gamma and len(gamma.group(1).split(",")) == 6

    # Hand-written BN equals nn.BatchNorm2d to float32 rounding: outputs, gradients, running stats, eval mode.
    compare = stdout(tagged(nb, "bn-compare")) + stdout(tagged(nb, "bn-network"))
    diffs = [float(d) for d in re.findall(r"\b\d\.\de[-+]\d+\b", compare)]
    assert len(diffs) == 12, compare  # 3 steps x (outputs, input grads), running stats, gamma/beta grads, eval, net
    assert max(diffs) < 1e-5, compare  # float32 rounding; the book's biased running variance would be off by 4e-4

    resnet = stdout(tagged(nb, "resnet"))
    assert re.search(r"^epoch 1/1 ", resnet, flags=re.M) and "examples/sec on" in resnet, resnet
    # Each training cell says how long it should take before it starts, and what it took when last timed.
    for tag in ("train-lenet-bn", "resnet", "lenet-plain"):
        cell = tagged(nb, tag)
        assert re.search(r"^estimated: about \d", stdout(cell), flags=re.M), (tag, stdout(cell))
        assert re.search(r"last timed run: \d", cell.source), (tag, cell.source)
    shipped = stdout(tagged(nb, "shipped-resnet"))
    assert shipped.startswith("resnet18@32.fashion_mnist: cnnzoo train resnet18 --input-size 32"), shipped
    assert re.search(r"^test accuracy [01]\.\d{4} on 20 test images \(its card: 0\.9\d{3}", shipped, re.M), shipped

    # See inside lenet_bn: each cell draws its figure, of what it says it draws.
    for tag in ("see-filters", "see-feature-maps", "see-cam", "see-top-losses", "see-class-grid"):
        pngs = displayed(tagged(nb, tag), "image/png")
        assert len(pngs) == 1 and pngs[0].startswith("iVBORw0KGgo"), tag
    assert "first convolution: 6 filters of 1x5x5" in stdout(tagged(nb, "see-filters"))
    stages = stdout(tagged(nb, "see-feature-maps")).splitlines()
    assert len(stages) == 16 and stages[0].split() == ["0", "(Conv2d)", "[1,", "6,", "24,", "24]"], stages
    cam = stdout(tagged(nb, "see-cam"))
    assert "Grad-CAM of layer '6' (its output for one image: [1, 16, 8, 8])" in cam, cam  # the last map >= 7x7
    assert len(re.findall(r"^  test image \d+: true ", cam, flags=re.M)) == 4, cam
    width, height = png_size(displayed(tagged(nb, "see-cam"), "image/png")[0])
    assert height > width, (width, height)  # four rows of (picture, map, top classes)
    mistakes = re.findall(
        r"^test image \d+: true (.+), taken for (.+) with p = ", stdout(tagged(nb, "see-top-losses")), re.M
    )
    assert mistakes and all(true != said for true, said in mistakes), mistakes  # random pixels: it errs

    # The comparison: the two LeNets trained here and the shipped ResNet-18, with the counts the summaries give.
    (table,) = displayed(tagged(nb, "compare"), "text/markdown")
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]] for r in table.splitlines()[2:]}
    assert list(rows) == ["lenet", "lenet_bn", "resnet18@32"], table
    lenet_macs = cnnzoo.summary(cnnzoo.create_model("lenet")).macs  # 28x28, as the run trained it
    assert rows["lenet"][:2] == ["61,706", f"{lenet_macs / 1e6:.2f}M"] and rows["lenet_bn"][0] == "44,878", table
    assert rows["lenet"][2] == rows["lenet_bn"][2] == "1, here" and rows["resnet18@32"][2] == "20, shipped", table
    for name, row in rows.items():
        accuracy, per_sec = float(row[3]), float(row[4].replace(",", ""))
        assert 0 <= accuracy <= 1 and per_sec > 0, (name, table)
    assert displayed(tagged(nb, "compare"), "image/png")


def test_your_own_images_notebook(isolated_data, tmp_path):
    nb = run_notebook("your_own_images.ipynb", tmp_path, {})

    train = tagged(nb, "train-folder")
    assert re.search(r"^estimated: about \d", stdout(train), flags=re.M), stdout(train)
    assert re.search(r"last timed run: \d", train.source), train.source
    loaded = stdout(tagged(nb, "load-folder"))
    assert "3 classes: circle, square, triangle" in loaded, loaded
    assert displayed(tagged(nb, "load-folder"), "image/png")

    # Shapes of distinct colours: a few epochs on a few dozen pictures get far above chance (1/3).
    report = stdout(tagged(nb, "evaluate-folder"))
    match = re.search(r"^test accuracy: ([0-9.]+) on (\d+) held-out images", report, flags=re.M)
    assert match, report
    assert int(match.group(2)) == 30  # a quarter of the 40 pictures of each of the 3 classes
    assert float(match.group(1)) >= 0.8, report

    assert displayed(tagged(nb, "predict-tensors"), "image/png")
    predictions = stdout(tagged(nb, "predict-files"))
    assert len(re.findall(r"new_(circle|square|triangle)\.png", predictions)) == 3, predictions

    # Grad-CAM of the three new pictures, and the top-losses gallery of the held-out split: as many mistakes as
    # the evaluation counted (fewer than the gallery's 16).
    cam = tagged(nb, "see-cam")
    assert len(re.findall(r"^  new_(circle|square|triangle)\.png: map for ", stdout(cam), flags=re.M)) == 3, stdout(cam)
    assert len(displayed(cam, "image/png")) == 1
    losses = tagged(nb, "see-top-losses")
    counted = re.search(r"^(\d+) mistakes among 30 held-out pictures", stdout(losses), flags=re.M)
    assert counted and int(counted.group(1)) == round((1 - float(match.group(1))) * 30), stdout(losses)
    assert len(displayed(losses, "image/png")) == 1
