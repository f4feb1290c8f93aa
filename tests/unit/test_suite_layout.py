"""The test suite's own layout rules (README "What the tests use"): every test module sits in a
layer folder, no test module imports another (shared code lives in tests/support), and paths are
computed in one place (tests/support/paths.py). Checked on the real tree and on a built tree
that breaks each rule."""

from __future__ import annotations

import ast
from pathlib import Path

from support.paths import TESTS_DIR

LAYER_FOLDERS = ("unit", "plugin", "e2e", "gpu")
PATHS_MODULE = Path("support/paths.py")


def layout_problems(tests_dir: Path) -> list[str]:
    """What breaks the layout rules under `tests_dir`, one line each (empty: none)."""
    problems = []
    test_modules = {p.stem for p in tests_dir.rglob("test_*.py")}
    for path in sorted(tests_dir.rglob("*.py")):
        rel = path.relative_to(tests_dir)
        if rel.parts[0] == "data" or rel.parts[0] == "gpu":  # tests/gpu stays as the GPU runners use it
            continue
        if path.name.startswith("test_") and rel.parts[0] not in LAYER_FOLDERS:
            problems.append(f"{rel}: a test module outside the layer folders {LAYER_FOLDERS}")
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported = [node.module]
            elif isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            else:
                imported = []
            for name in imported:
                if name.split(".")[0] in test_modules:
                    problems.append(f"{rel}:{node.lineno}: imports the test module {name} (move it to tests/support)")
        uses_file = any(isinstance(node, ast.Name) and node.id == "__file__" for node in ast.walk(tree))
        if rel != PATHS_MODULE and uses_file:
            problems.append(f"{rel}: computes a path from __file__ (use tests/support/paths.py)")
    return problems


def test_the_suite_keeps_its_layout() -> None:
    assert layout_problems(TESTS_DIR) == []


def test_a_built_tree_breaking_each_rule_is_reported(tmp_path: Path) -> None:
    (tmp_path / "unit").mkdir()
    (tmp_path / "support").mkdir()
    (tmp_path / "unit" / "test_a.py").write_text("X = 1\n")
    (tmp_path / "unit" / "test_b.py").write_text("from test_a import X\n")
    (tmp_path / "test_flat.py").write_text("import pathlib\nDATA = pathlib.Path(__file__).parent\n")
    (tmp_path / "support" / "paths.py").write_text("import pathlib\nREPO = pathlib.Path(__file__).parent\n")
    assert layout_problems(tmp_path) == [
        "test_flat.py: a test module outside the layer folders ('unit', 'plugin', 'e2e', 'gpu')",
        "test_flat.py: computes a path from __file__ (use tests/support/paths.py)",
        "unit/test_b.py:1: imports the test module test_a (move it to tests/support)",
    ]
