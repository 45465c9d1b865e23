"""The package's layout rule: product code never depends on the evaluation code.

`revsearch.eval` holds research code (datasets, metrics, experiments, threshold fitting)
and its heavier dependencies. Only the CLI's `eval` and `calibrate` commands reach it, and
only from inside their function bodies, so that `import revsearch` (and the server, and
every other command) never loads it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "src" / "revsearch"
EVAL = "revsearch.eval"
# Modules that may import `revsearch.eval` inside function bodies, never at module level.
LAZY_ONLY = {"revsearch.cli"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def product_modules() -> dict[str, Path]:
    """Every module of the package outside `revsearch.eval`, by dotted name."""
    modules = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    return {name: p for name, p in modules.items() if not _is_eval(name)}


def _is_eval(name: str) -> bool:
    return name == EVAL or name.startswith(EVAL + ".")


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute name `from ... import` reads from, relative levels resolved."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Every module name an import statement may load (for `from a import b`, both `a` and
    `a.b`, since `b` may be a submodule)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    source = _resolve(node, module, is_package)
    return [source, *(f"{source}.{alias.name}" for alias in node.names)]


def eval_imports(path: Path, module: str) -> list[tuple[int, bool]]:
    """(line, inside a function body) for each statement of `path` importing the eval code."""
    found: list[tuple[int, bool]] = []
    is_package = path.name == "__init__.py"

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom) and any(
                _is_eval(n) for n in imported_names(node, module, is_package)):
            found.append((node.lineno, in_function))
        inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef
                                          | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(path.read_text(), filename=str(path)), False)
    return found


def layout_violations() -> list[str]:
    problems = []
    for module, path in product_modules().items():
        for line, in_function in eval_imports(path, module):
            if module in LAZY_ONLY and in_function:
                continue
            where = "at module level" if module in LAZY_ONLY else ""
            problems.append(f"{path.relative_to(ROOT)}:{line} imports {EVAL} {where}".strip())
    return problems


def test_the_rule_sees_every_form_of_import(tmp_path):
    """The checker itself: absolute, relative and lazy imports are all recognised."""
    cases = {
        "import revsearch.eval.metrics": True,
        "from revsearch import eval": True,
        "from revsearch.eval import lfw": True,
        "from ..eval import metrics": True,
        "from .. import eval as e": True,
        "from . import track": False,
        "from revsearch import evaluation_free": False,
        "import revsearch.search": False,
    }
    for source, expected in cases.items():
        path = tmp_path / "track.py"
        path.write_text(f"def f():\n    {source}\n")
        found = eval_imports(path, "revsearch.video.track")
        assert found == ([(2, True)] if expected else []), source
    path.write_text("class C:\n    import revsearch.eval\n")
    assert eval_imports(path, "revsearch.video.track") == [(2, False)]
    path = tmp_path / "__init__.py"
    path.write_text("from .eval import metrics\n")
    assert eval_imports(path, "revsearch") == [(1, False)]


def test_product_modules_never_import_eval():
    assert "revsearch.cli" in product_modules() and "revsearch.api" in product_modules()
    problems = layout_violations()
    assert not problems, "product code imports the evaluation code:\n" + "\n".join(problems)


def test_importing_the_product_loads_no_eval_module():
    """At run time too: importing the package and every product module (the CLI and the
    server included) leaves `revsearch.eval` out of `sys.modules`."""
    modules = sorted(m for m in product_modules() if m != "revsearch.__main__")
    code = ("import importlib, json, sys\n"
            f"for m in {modules!r}:\n"
            "    importlib.import_module(m)\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "revsearch.cli" in loaded and "revsearch.serve.app" in loaded
    pulled_in = [m for m in loaded if _is_eval(m)]
    assert not pulled_in, f"importing the product loads {pulled_in}"


def test_pymilvus_is_imported_in_one_place():
    """`store.backend.import_pymilvus` sets gRPC's fork handling before the first import
    (see its docstring); an import anywhere else could come first and undo it."""
    owner = "revsearch.store.backend"
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom) and any(
                    n == "pymilvus" or n.startswith("pymilvus.")
                    for n in imported_names(node, module, path.name == "__init__.py")):
                found.append(f"{module}:{node.lineno}")
    assert len(found) == 1 and found[0].startswith(owner + ":"), found
