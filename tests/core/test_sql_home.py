"""SQL has one home, core/store/: no other module runs a statement, indexes a table, passes SQL
text, names a store table to the store's generic row methods or reads a `*_json` column. Read from
the source (AST), so a new violation anywhere in the package fails here with its file and line."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sqlite_utils import Database

import palmares_desktop
from palmares_desktop.core.store.schema import migrate

PACKAGE = Path(palmares_desktop.__file__).parent
STORE = PACKAGE / "core" / "store"
SQL_CALLS = {
    "execute",
    "executescript",
    "executemany",
    "query",
    "rows_where",
    "count_where",
    "execute_returning_dicts",
}
GENERIC_ROW_METHODS = {"rows", "get", "insert", "update", "upsert"}
SQL_TEXT = re.compile(
    r"^\s*(select\s.+\sfrom\s|insert\s+(or\s+\w+\s+)?into\s|update\s+\w+\s+set\s|delete\s+from\s|"
    r"create\s+(unique\s+)?(table|index|trigger)\s|drop\s+(table|index|trigger)\s|pragma\s)",
    re.IGNORECASE | re.DOTALL,
)
#: Calls named like SQL that are not SQL: pyradiomics' feature extractor.
NOT_SQL = {("core/radiomics/extract.py", "extractor", "execute")}


def _tables() -> set[str]:
    db = Database(memory=True)
    migrate(db)
    return set(db.table_names())


def _receiver(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _text(node: ast.expr) -> str:
    """The literal text of a string argument (an f-string's fixed parts joined), else ''."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return ""


def violations(path: Path, source: str, tables: set[str]) -> list[str]:
    where = path.relative_to(PACKAGE).as_posix()
    found = []
    for node in ast.walk(ast.parse(source)):
        line = f"{where}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method, receiver = node.func.attr, _receiver(node.func.value)
            if method in SQL_CALLS and (where, receiver, method) not in NOT_SQL:
                found.append(f"{line} calls .{method}()")
            first = node.args[0] if node.args else None
            if (
                method in GENERIC_ROW_METHODS
                and receiver == "store"
                and isinstance(first, ast.Constant)
                and first.value in tables
            ):
                found.append(f"{line} names the table {first.value!r} (ask core/store/records.py)")
        if isinstance(node, ast.Call):
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                text = _text(arg)
                if text and SQL_TEXT.match(text):
                    found.append(f"{line} passes SQL text {text[:40]!r}")
        if isinstance(node, ast.Subscript) and _receiver(node.value) == "db":
            found.append(f"{line} indexes db[...]")
        key = node.slice if isinstance(node, ast.Subscript) else None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            key = node.args[0] if node.args else None
        if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value.endswith("_json"):
            found.append(f"{line} reads the JSON column {key.value!r} (core/store/records.py parses it)")
    return found


def test_no_module_outside_core_store_runs_sql():
    tables = _tables()
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if STORE in path.parents:
            continue
        found += violations(path, path.read_text(encoding="utf-8"), tables)
    assert found == []


def test_the_check_sees_each_kind_of_violation():
    """The test above would pass vacuously if the checks saw nothing: each is shown one example."""
    source = """
store.db.query("select code from subjects")
store.db["series"].insert({})
conn.executescript(SCHEMA)
store.rows("series", "subject_id = ?", [x])
run(f"DELETE FROM {table} WHERE id = ?")
extractor.execute(image, mask)
sizes = json.loads(row["size_json"])
"""
    found = violations(PACKAGE / "cli" / "example.py", source, _tables())
    assert sorted(found) == [
        "cli/example.py:2 calls .query()",
        "cli/example.py:2 passes SQL text 'select code from subjects'",
        "cli/example.py:3 indexes db[...]",
        "cli/example.py:4 calls .executescript()",
        "cli/example.py:5 names the table 'series' (ask core/store/records.py)",
        "cli/example.py:6 passes SQL text 'DELETE FROM  WHERE id = ?'",
        "cli/example.py:7 calls .execute()",
        "cli/example.py:8 reads the JSON column 'size_json' (core/store/records.py parses it)",
    ]
