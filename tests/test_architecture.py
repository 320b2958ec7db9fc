"""The shape of the house (docs/architecture.md) that import-linter does not see: functions a reader
can hold in their head, and faces that hold no SQL.

The layers themselves are checked by `lint-imports` in `make test` (pyproject.toml)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import churnguard

PACKAGE = Path(churnguard.__file__).parent
MAX_FUNCTION_LINES = 100
# SQL builders: one query written out whole reads better than one cut into pieces.
SQL_BUILDERS = {("features/sql.py", "feature_query")}
# The faces: they parse, call one library function and map its error.
FACES = ("cli", "service/routers", "service/dashboard")


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _long_functions(path: Path) -> list[str]:
    relative = path.relative_to(PACKAGE).as_posix()
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES and (relative, node.name) not in SQL_BUILDERS:
                found.append(f"{relative}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_outside_the_sql_builders_is_longer_than_100_lines() -> None:
    long = [f for path in _modules(PACKAGE) for f in _long_functions(path)]
    assert long == []


def test_the_length_check_sees_a_long_function(tmp_path: Path, monkeypatch) -> None:
    module = tmp_path / "long.py"
    module.write_text("def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES)
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path)
    assert _long_functions(module) == [f"long.py:1 f ({MAX_FUNCTION_LINES + 1} lines)"]


@pytest.mark.parametrize("face", FACES)
def test_faces_run_no_sql(face: str) -> None:
    calls = [f"{path.relative_to(PACKAGE)}:{node.lineno}"
             for path in _modules(PACKAGE / face)
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and node.func.attr in ("execute", "sql", "register")]
    assert calls == []
