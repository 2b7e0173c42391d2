"""The shape of the code (docs/architecture.md): one-way imports, functions that fit in one's head, a thin CLI,
and the book called by its name in everything a user reads."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from radon.complexity import cc_visit

from cnnzoo.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
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


def _allowed(component: set[str]) -> bool:
    """The registry and the model families it imports to fill itself (each family registers into it)."""
    return component <= {"cnnzoo.registry", "cnnzoo.models"} | {m for m in component if m.startswith("cnnzoo.models.")}


def test_the_import_graph_has_no_circle_but_registry_and_model_families():
    graph = _graph()
    assert "cnnzoo.run.setup" in graph and "cnnzoo.engine" in graph["cnnzoo.run.setup"]  # the scan sees imports
    bad = [sorted(c) for c in _cycles(graph) if not _allowed(c)]
    assert bad == []


def test_the_cycle_check_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [{"a", "b", "c"}]


def test_the_engine_knows_no_front_end():
    graph = _graph()
    for name in ("cnnzoo.engine", "cnnzoo.run.setup", "cnnzoo.run.training"):
        front = {m for m in graph[name] if m.startswith(("cnnzoo.cli", "cnnzoo.progress"))}
        if name == "cnnzoo.run.training":
            # Run.fit(progress=True) is the Python API's own front end: it may reach the progress bar, lazily,
            # and nothing else; Training, which the CLI drives, shows nothing itself.
            front.discard("cnnzoo.progress")
            top = (SRC / "run" / "training.py").read_text(encoding="utf-8").split("\ndef ")[0]
            assert "cnnzoo.progress" not in top.split("\nclass ")[0]
        assert not front, (name, front)
    engine = (SRC / "engine.py").read_text(encoding="utf-8")
    assert "print(" not in engine and "tqdm" not in engine and "IPython" not in engine


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
