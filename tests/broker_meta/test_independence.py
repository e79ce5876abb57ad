"""broker_meta talks to any ZooKeeper-compatible server through a client and imports nothing from coord."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "broker_meta"


def test_no_module_imports_coord():
    for path in PKG.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            assert not any(n == "coord" or n.startswith("coord.") for n in names), f"{path.name} imports {names}"


def test_importing_everything_loads_no_coord_module():
    code = ("import sys, importlib, pkgutil, broker_meta\n"
            "for m in pkgutil.iter_modules(broker_meta.__path__): importlib.import_module('broker_meta.' + m.name)\n"
            "print(sorted(n for n in sys.modules if n == 'coord' or n.startswith('coord.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PKG.parent, check=True)
    assert out.stdout.strip() == "[]"
