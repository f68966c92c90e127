"""Code shape rules of issue 17 that import-linter cannot express."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 60


def test_no_function_in_the_study_app_is_over_60_lines_unless_its_docstring_says_why():
    long = []
    for path in sorted((ROOT / "study").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            lines = node.end_lineno - node.lineno + 1
            docstring = ast.get_docstring(node) or ""
            if lines > MAX_LINES and f"Longer than {MAX_LINES} lines" not in docstring:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "split these, or say why in the docstring:\n" + "\n".join(long)
