"""The dependency direction of shared/design.md, kept by a test: `sim -> core -> jute`,
`aio -> core, jute` (and the root package's `__version__`), `sim` and `aio` never import each other, `broker_meta` never imports `coord`,
the core never touches the clock, sockets, files or threads, and no two coord modules import each
other (directly or round a longer circle). Imports inside functions count: a lazy import is still a
dependency."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What the pure core may not import (design.md: "no asyncio, socket, time, random, os, threading").
IMPURE = {"asyncio", "socket", "time", "random", "os", "threading", "subprocess", "ssl", "selectors",
          "signal", "multiprocessing", "concurrent"}
# Named exceptions, each with its reason.
IMPURE_ALLOWED = {
    # zstd (de)compressor objects are cached per thread because the shell encodes snapshots on a
    # worker thread; the format itself is pure.
    ("coord.core.snapformat", "threading"),
}
# package -> the coord packages it may import (besides itself).
ALLOWED = {
    "coord.jute": set(),
    "coord.core": {"coord.jute"},
    "coord.sim": {"coord.core", "coord.jute"},
    "coord.aio": {"coord.core", "coord.jute", "coord.runtime", "coord.zkimport"},
}


def module_files(root: Path, packages=("coord", "broker_meta")) -> dict[str, Path]:
    out = {}
    for pkg in packages:
        for f in (root / pkg).rglob("*.py"):
            parts = list(f.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = f
    return out


def imports_of(path: Path) -> set[str]:
    """Every absolute module name imported anywhere in the file (`from a import b` gives a.b and a)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (a name resolves to its longest known prefix)."""
    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None
    return {m: {r for n in imports_of(f) if (r := resolve(n)) and r != m} for m, f in files.items()}


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(files: dict[str, Path]) -> list[str]:
    out = []
    g = graph(files)
    for m, deps in sorted(g.items()):
        for pkg, allowed in ALLOWED.items():
            if not in_package(m, pkg):
                continue
            for d in sorted(deps):
                if d == "coord" or in_package(d, pkg) or any(in_package(d, a) for a in allowed):
                    continue
                out.append(f"{m} imports {d} ({pkg} may import only {sorted(allowed) or 'the standard library'})")
        if in_package(m, "broker_meta"):
            out += [f"{m} imports {d} (broker_meta never imports coord)" for d in sorted(deps)
                    if in_package(d, "coord")]
        if in_package(m, "coord.core") or in_package(m, "coord.jute"):
            for n in sorted(imports_of(files[m])):
                top = n.split(".")[0]
                if top in IMPURE and (m, top) not in IMPURE_ALLOWED:
                    out.append(f"{m} imports {n} (the core is pure: no clock, sockets, files or threads)")
    out += [f"import circle: {' -> '.join(c)}" for c in circles(g)]
    return out


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(g) + 100))
    try:
        for v in sorted(g):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_the_repository_keeps_the_dependency_direction():
    assert violations(module_files(ROOT)) == []


@pytest.mark.parametrize("module,source,expected", [
    ("coord/core/bad.py", "import coord.aio.server\n", "coord.core.bad imports coord.aio.server"),
    ("coord/core/bad.py", "def f():\n    from coord.sim import world\n", "coord.core.bad imports coord.sim"),
    ("coord/core/bad.py", "import time\n", "coord.core.bad imports time (the core is pure"),
    ("coord/sim/bad.py", "from coord.aio import peer\n", "coord.sim.bad imports coord.aio.peer"),
    ("coord/aio/bad.py", "import coord.sim\n", "coord.aio.bad imports coord.sim"),
    ("coord/jute/bad.py", "from coord.core import acl\n", "coord.jute.bad imports coord.core.acl"),
    ("broker_meta/bad.py", "import coord.jute\n", "broker_meta.bad imports coord.jute (broker_meta never"),
    ("coord/a.py", "import coord.b\n", "import circle: coord.a -> coord.b"),
])
def test_a_broken_direction_is_reported(tmp_path, module, source, expected):
    """The checker itself fails on each kind of break (run on a small copy of the layout)."""
    for pkg in ("coord/jute", "coord/core", "coord/sim", "coord/aio", "broker_meta"):
        (tmp_path / pkg).mkdir(parents=True, exist_ok=True)
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "coord" / "__init__.py").write_text("")
    (tmp_path / "coord/aio/server.py").write_text("")
    (tmp_path / "coord/aio/peer.py").write_text("")
    (tmp_path / "coord/sim/world.py").write_text("")
    (tmp_path / "coord/core/acl.py").write_text("")
    (tmp_path / "coord/b.py").write_text("import coord.a\n")
    clean = violations(module_files(tmp_path))
    (tmp_path / module).write_text(source)
    found = violations(module_files(tmp_path))
    assert not any(expected in v for v in clean)
    assert any(expected in v for v in found), found
