"""The shape of the code (docs/architecture.md): one-way imports, functions that fit in one's head, a thin CLI,
and the book called by its name in everything a user reads."""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import json
import re
from pathlib import Path

import pytest
from radon.complexity import cc_visit

from cnnzoo.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "cnnzoo"
MAX_COMPLEXITY = 20  # radon grade C or better
MAX_CMD_LINES = 40


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The cnnzoo modules ``path`` imports, at any depth of the file (lazy imports count too).

    ``from package import module`` counts as importing the module, not the package's ``__init__``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("cnnzoo")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""  # cnnzoo imports absolutely: a relative import would not count
            if not node.level and base.startswith("cnnzoo"):
                named = {f"{base}.{a.name}" for a in node.names}
                found |= (named & modules) or {base}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path, set(modules)) if m in modules and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in graph:
        if v not in index:
            visit(v)
    return out


# The layers, bottom first (docs/architecture.md): a module imports from its own layer and the layers below it,
# never from one above. The package's front door (cnnzoo/__init__.py, whose names load on first use) and
# ``python -m cnnzoo`` stand above them all.
LAYERS = (
    ("_version", "the version string"),
    ("base", "errors, safe reads and writes, run-directory rules, devices and threads, plots"),
    ("models", "the registry, the networks, their layers, inspection, the book's figures"),
    ("data", "datasets, pictures, batches on the device"),
    ("explain", "what a network sees: CAM, feature maps, filters, mistakes"),
    ("train", "config, recipes, the loop and its state, optimizer, history, checkpoints, metrics"),
    ("weights", "the named trained weights: catalog, files, cards"),
    ("run", "the run layer: new, resume and open runs, their directory, report and progress"),
    ("serve", "inference for users: the predictor, export"),
    ("bench", "throughput, the race against the book's pipeline, the photo benchmark"),
    ("leaderboard", "several models over several seeds, one board"),
    ("studio", "the web app"),
    ("cli", "the command line"),
)
FRONT_DOOR = {"cnnzoo", "cnnzoo.__main__"}


def _layer_of(module: str) -> int:
    if module in FRONT_DOOR:
        return len(LAYERS)
    top = module.split(".")[1]
    return [name for name, _ in LAYERS].index(top)


def _upward(graph: dict[str, set[str]]) -> list[str]:
    """The imports that go up a layer."""
    return sorted(
        f"{a} -> {b}"
        for a, targets in graph.items()
        for b in targets
        if b not in FRONT_DOOR and _layer_of(b) > _layer_of(a)
    ) + sorted(
        f"{a} -> {b}" for a, targets in graph.items() for b in targets if b in FRONT_DOOR and a not in FRONT_DOOR
    )


def test_every_folder_of_the_package_is_a_layer():
    names = {p.name for p in SRC.iterdir() if p.is_dir() and not p.name.startswith("__")}
    files = {p.stem for p in SRC.glob("*.py")}
    assert names == {name for name, _ in LAYERS if name != "_version"}
    assert files == {"__init__", "__main__", "_version"}


def test_no_import_goes_up_a_layer():
    graph = _graph()
    assert "cnnzoo.train.loop" in graph["cnnzoo.run.training"]  # the scan sees imports
    assert _upward(graph) == []


def test_the_layer_check_finds_an_import_that_goes_up():
    graph = {"cnnzoo.base.errors": set(), "cnnzoo.data.idx": {"cnnzoo.base.errors"}, "cnnzoo.models.lenet": set()}
    assert _upward(graph) == []
    graph["cnnzoo.data.idx"].add("cnnzoo.run.setup")  # data reaching up to the run layer
    graph["cnnzoo.models.lenet"].add("cnnzoo")  # a layer reaching for the front door
    assert _upward(graph) == ["cnnzoo.data.idx -> cnnzoo.run.setup", "cnnzoo.models.lenet -> cnnzoo"]


def test_the_import_graph_has_no_circle():
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [{"a", "b", "c"}]


def _function_level_imports(text: str) -> list[str]:
    """cnnzoo imports made inside a function (module-level ones, and ``if TYPE_CHECKING:`` blocks, are fine)."""
    found = []
    for fn in ast.walk(ast.parse(text)):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
                found += [f"{fn.name}:{node.lineno} {n}" for n in names if n.startswith("cnnzoo")]
    return found


def test_no_function_imports_a_cnnzoo_module():
    """Every import between cnnzoo's modules is at the top of a file, where the layer check sees it. The two
    deliberate exceptions name modules as data: the package's front door loads its names on first use, and the CLI
    imports a command's module when the command runs (``cnnzoo --help`` must not wait for torch)."""
    lazy = {}
    for path in sorted(SRC.rglob("*.py")):
        if found := _function_level_imports(path.read_text(encoding="utf-8")):
            lazy[str(path.relative_to(SRC))] = found
    assert lazy == {}
    dynamic = sorted(
        str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if "import_module(" in p.read_text(encoding="utf-8")
    )
    assert dynamic == sorted(DYNAMIC_IMPORTS)


DYNAMIC_IMPORTS = {  # the files that import a module named by a string, and why
    "__init__.py": "the front door: cnnzoo.load_model and friends load on first use",
    "cli/common.py": "a command's module, imported when the command runs",
    "serve/export.py": "the optional export extra (onnx), never a cnnzoo module",
}


def test_the_function_level_import_check_finds_one():
    code = "import os\nfrom cnnzoo.base import errors\ndef f():\n    from cnnzoo.run import open_run\n    import json\n"
    assert _function_level_imports(code) == ["f:4 cnnzoo.run"]


def test_every_command_the_parser_names_exists_and_the_parser_imports_no_command():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        module, _, function = p.get_default("func").partition(":")
        assert module.startswith("cnnzoo.cli.") and function == f"cmd_{name}", name
        assert callable(getattr(importlib.import_module(module), function)), name
    flags = {m for m in _graph() if m.startswith("cnnzoo.cli.flags")}
    reached = set().union(*(_graph()[m] for m in flags))
    assert {m for m in reached if m.startswith("cnnzoo.cli") and not m.startswith("cnnzoo.cli.flags")} <= {
        "cnnzoo.cli.common"
    }


def test_the_loop_knows_no_front_end():
    graph = _graph()
    for name in ("cnnzoo.train.loop", "cnnzoo.run.setup", "cnnzoo.run.training"):
        front = {m for m in graph[name] if m.startswith("cnnzoo.cli")}
        assert not front, (name, front)
    for path in (SRC / "train").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "print(" not in text and "tqdm" not in text and "IPython" not in text, path.name


def test_no_function_is_too_complex_to_hold_in_ones_head():
    heavy = []
    for path in sorted(SRC.rglob("*.py")):
        for block in cc_visit(path.read_text(encoding="utf-8")):
            if block.complexity > MAX_COMPLEXITY:
                heavy.append(f"{path.relative_to(ROOT)}:{block.lineno} {block.name} ({block.complexity})")
    assert heavy == []


def test_each_cli_command_is_a_screenful():
    long = []
    for path in sorted((SRC / "cli").glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("cmd_"):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_CMD_LINES:
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert long == []


# ------------------------------------------------------------------------------------------------
# the book is "d2l" or "the book"; "seed" is only ever the random seed
# ------------------------------------------------------------------------------------------------
BOOK_AS_SEEDS = re.compile(r"\bthe seeds\b|\bseeds'|\bseed notes?\b|\bseed 00\d\b|\bseed note's\b", re.I)


def _help_texts() -> dict[str, str]:
    parser = build_parser()
    texts = {"cnnzoo": parser.format_help()}
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        texts[f"cnnzoo {name}"] = p.format_help()
    return texts


def _user_facing_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "benchmarks").glob("*.md"))]
    return files + sorted((ROOT / "examples").glob("*.ipynb"))


def test_the_words_catch_what_they_should():
    for text in ("as the seeds' code does", "see seed 001", "the seed notes print", "The seeds train it"):
        assert BOOK_AS_SEEDS.search(text), text
    for text in ("--seeds 0 1 2", "over 3 seeds (mean ± std)", "seed 0", "the random seed"):
        assert not BOOK_AS_SEEDS.search(text), text


@pytest.mark.parametrize("path", _user_facing_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_user_facing_file_calls_the_book_the_seeds(path):
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"])
    hits = [line.strip() for line in text.splitlines() if BOOK_AS_SEEDS.search(line)]
    assert hits == []


def test_no_help_text_calls_the_book_the_seeds():
    hits = {cmd: m.group(0) for cmd, text in _help_texts().items() if (m := BOOK_AS_SEEDS.search(text))}
    assert hits == {}


def test_every_subcommand_has_help():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    for cmd in ("data", "models", "summary", "train", "eval", "predict", "export", "plot", "bench", "leaderboard"):
        assert cmd in out.getvalue()


def test_cnnzoo_help_imports_no_torch():
    """`cnnzoo --help` (and every usage error) answers at once: building the parser imports no torch, numpy or
    matplotlib (measured: 2.3 s before, 0.06 s after, on 2 cores with a training beside it)."""
    import subprocess
    import sys

    code = ("import sys\nfrom cnnzoo.cli import build_parser\nbuild_parser().format_help()\n"
            "print(sorted(m for m in ('torch', 'numpy', 'matplotlib', 'captum') if m in sys.modules))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------
# the fast tier
# ------------------------------------------------------------------------------------------------
def test_every_test_the_slow_list_names_exists():
    """tests/slow_tests.txt (what `make check` leaves out) names tests that exist: a renamed or moved test would
    otherwise slip into the fast tier unnoticed."""
    from conftest import slow_test_ids

    missing = []
    for node in sorted(slow_test_ids()):
        path, _, name = node.partition("::")
        source = ROOT / path
        function = name.split("[", 1)[0]
        if not source.is_file() or (name and f"def {function}(" not in source.read_text(encoding="utf-8")):
            missing.append(node)
    assert missing == []
    assert len(slow_test_ids()) > 50
