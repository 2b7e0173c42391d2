"""``docs/reliability.md`` is generated from the tests, and this test fails when they disagree.

The tables between ``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->`` are rendered from the
bad-input catalogues (``CASES`` of ``test_bad_inputs.py`` and of every ``test_bad_inputs_*.py``, in
:data:`CATALOGUES` order), :data:`test_reliability.SCENARIOS` and :data:`test_fuzz.FUZZ_TARGETS`; the prose
around them is written by hand. After changing a case, regenerate:

    python tests/catalogues/test_reliability_doc.py --write
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
DOC = TESTS.parents[1] / "docs" / "reliability.md"
# The catalogues, in the order the doc lists them; a new tests/catalogues/test_bad_inputs_*.py must be named here.
CATALOGUES = ("test_bad_inputs", "test_bad_inputs_outputs", "test_bad_inputs_data", "test_bad_inputs_oneline")
MIN_CASES = 130
_BLOCK = re.compile(r"(<!-- BEGIN GENERATED: (\w+) -->\n)(.*?)(<!-- END GENERATED: \2 -->)", re.S)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    """``text`` as an inline code span, whatever backticks it holds."""
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")


def all_cases() -> list:
    """Every catalogue's cases, in :data:`CATALOGUES` order (a catalogue not written yet is skipped)."""
    cases = []
    for name in CATALOGUES:
        if (TESTS / f"{name}.py").exists():
            cases += importlib.import_module(name).CASES
    return cases


def render_catalogue() -> str:
    header = ["| # | Bad input | Command | cnnzoo says (exit 2) | What to do |", "|---|---|---|---|---|"]
    lines = []
    topic = None
    for n, case in enumerate(all_cases(), 1):
        if case.topic != topic:
            topic = case.topic
            lines += ["", f"**{topic.capitalize()}**", "", *header]
        what = _cell(case.case[0].upper() + case.case[1:])
        says = " … ".join(_code(f) for f in case.expect)
        lines.append(f"| {n} | {what} | {_code('cnnzoo ' + case.cmd)} | {says} | {_cell(case.todo)} |")
    return "\n".join(lines[1:]) + "\n"


def render_scenarios() -> str:
    import test_reliability

    lines = ["| Case | What cnnzoo does | What to do | Test |", "|---|---|---|---|"]
    for _, scenario, behaviour, todo, test in test_reliability.SCENARIOS:
        lines.append(f"| {_cell(scenario)} | {_cell(behaviour)} | {_cell(todo)} | `test_reliability.py::{test}` |")
    return "\n".join(lines) + "\n"


def render_fuzz() -> str:
    import test_fuzz

    lines = ["| Target | Test |", "|---|---|"]
    for _, what, test in test_fuzz.FUZZ_TARGETS:
        lines.append(f"| {_cell(what)} | `test_fuzz.py::{test}` |")
    return "\n".join(lines) + "\n"


RENDERERS = {"catalogue": render_catalogue, "scenarios": render_scenarios, "fuzz": render_fuzz}


def regenerate(text: str) -> str:
    """``text`` with every generated block replaced by a fresh rendering."""
    return _BLOCK.sub(lambda m: m.group(1) + RENDERERS[m.group(2)]() + m.group(4), text)


def test_the_doc_is_what_the_tests_generate():
    text = DOC.read_text(encoding="utf-8")
    assert sorted(m.group(2) for m in _BLOCK.finditer(text)) == sorted(RENDERERS)
    assert text == regenerate(text), (
        "docs/reliability.md is stale: run `python tests/catalogues/test_reliability_doc.py --write`"
    )


def test_the_doc_lists_at_least_130_cases_and_every_case():
    import test_fuzz
    import test_reliability

    text = DOC.read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| ", _BLOCK.search(text).group(3), re.M)
    assert len(rows) == len(all_cases())
    assert [int(r) for r in rows] == list(range(1, len(rows) + 1))
    assert len(rows) + len(test_reliability.SCENARIOS) + len(test_fuzz.FUZZ_TARGETS) >= MIN_CASES


def test_every_catalogue_is_listed_and_its_ids_are_unique():
    found = sorted(p.stem for p in TESTS.glob("test_bad_inputs*.py"))
    assert found == sorted(n for n in CATALOGUES if (TESTS / f"{n}.py").exists())
    ids = [c.id for c in all_cases()]
    assert len(ids) == len(set(ids))


def test_every_test_the_doc_names_exists():
    import test_fuzz
    import test_reliability

    for module, names in ((test_reliability, [s[4] for s in test_reliability.SCENARIOS]),
                          (test_fuzz, [t[2] for t in test_fuzz.FUZZ_TARGETS])):  # fmt: skip
        for name in names:
            assert callable(getattr(module, name, None)), f"{module.__name__}.{name} does not exist"


def test_the_renderer_can_fail():
    """A stale table is caught: change one case's advice and the rendering differs."""
    text = DOC.read_text(encoding="utf-8")
    case = all_cases()[0]
    try:
        object.__setattr__(case, "todo", case.todo + " (edited)")
        assert regenerate(text) != text
    finally:
        object.__setattr__(case, "todo", case.todo.removesuffix(" (edited)"))


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: python {Path(__file__).name} --write   (regenerates the tables in {DOC})")
    sys.path[:0] = [str(TESTS), str(TESTS.parent)]  # the catalogues, and conftest and helpers
    DOC.write_text(regenerate(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {DOC}")
