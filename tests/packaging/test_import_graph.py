"""npuc's modules import one way: no module imports, directly or through others, a
module that imports it back.

The import graph is read from the sources (every ``import`` statement, at module level
or inside a function, except under ``TYPE_CHECKING``), so a cycle hidden behind a lazy
import counts too. The layering (ir imports nothing of npuc, targets imports ir,
compiler imports both) is checked on the same graph.
"""

import ast
from functools import cache
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"npuc": "npuc", "npuc.ir": "ir", "npuc.compiler": "compiler",
           "npuc.targets": "targets"}
def modules() -> dict[str, Path]:
    """Every module of npuc by its import name."""
    found = {}
    for package, folder in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if package == "npuc" and parts[0] in ("ir", "compiler", "targets"):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def _imports(name: str, path: Path, known) -> set[str]:
    """The npuc modules ``name`` imports (a name imported from a package counts as the
    module of that name when there is one, else as the package)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names if a.name in known)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    parts = parts[:len(parts) - child.level + 1]
                    base = ".".join(parts + ([child.module] if child.module else []))
                for a in child.names:
                    if f"{base}.{a.name}" in known:
                        out.add(f"{base}.{a.name}")
                    elif base in known:
                        out.add(base)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    out.discard(name)
    return out


@cache
def import_graph() -> nx.DiGraph:
    known = modules()
    g = nx.DiGraph()
    g.add_nodes_from(known)
    for name, path in known.items():
        g.add_edges_from((name, target) for target in _imports(name, path, known))
    return g


def _inside(name: str, packages) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_the_reader_sees_the_known_edges():
    g = import_graph()
    assert g.has_edge("npuc.compiler.executor.interpreter", "npuc.compiler.executor.kernels")
    assert g.has_edge("npuc.ir.analysis", "npuc.ir.graph")
    assert g.has_edge("npuc.compiler.passes.fold_constants", "npuc.compiler.passes.base")
    assert g.has_edge("npuc.compiler.driver", "npuc.compiler.bucketed")
    assert g.has_edge("npuc.compiler.parallel", "npuc.compiler.fanout_local")


def test_no_import_cycle_anywhere():
    g = import_graph()
    cycles = sorted(sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1)
    described = []
    for members in cycles:
        cycle = nx.find_cycle(g.subgraph(members))
        described.append(" -> ".join([a for a, _ in cycle] + [cycle[0][0]]))
    assert not described, "import cycles:\n" + "\n".join(described)


def test_the_cycle_check_sees_a_cycle(tmp_path):
    """Two modules importing each other, one lazily, are found as a cycle."""
    (tmp_path / "a.py").write_text("from npuc.x import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from npuc.x import a\n")
    known = {"npuc.x.a": tmp_path / "a.py", "npuc.x.b": tmp_path / "b.py"}
    assert _imports("npuc.x.a", known["npuc.x.a"], known) == {"npuc.x.b"}
    assert _imports("npuc.x.b", known["npuc.x.b"], known) == {"npuc.x.a"}


def test_layers_import_one_way():
    g = import_graph()
    wrong = [(a, b) for a, b in g.edges
             if _inside(a, ["npuc.ir"]) and not _inside(b, ["npuc.ir"])
             or _inside(a, ["npuc.targets"]) and _inside(b, ["npuc.compiler"])]
    assert not wrong, f"{wrong[0][0]} imports {wrong[0][1]}"
