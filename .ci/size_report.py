"""Print modules over 400 lines and functions over 50 (STYLE G1). Informational only."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

files = [
    Path(p)
    for p in subprocess.run(
        ["git", "ls-files", "*.py"], capture_output=True, text=True
    ).stdout.split()
    if not p.startswith(("tests/", "bench/"))
]
flagged = False
for path in files:
    if not path.exists():
        continue
    text = path.read_text()
    lines = text.count("\n")
    if lines > 400:
        print(f"module {path}: {lines} lines")
        flagged = True
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > 50:
                print(f"function {path}:{node.lineno} {node.name}: {length} lines")
                flagged = True
if not flagged:
    print("no module over 400 lines, no function over 50")
