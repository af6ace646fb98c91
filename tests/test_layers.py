"""Imports flow one way (issue 35 step 3; docs/architecture.md, "Layers"): an ast walk over every module of the
package, function-level imports included, checks each import of one of our modules against the layer table below,
and that every import cycle runs through an edge on the KNOWN list. KNOWN is the list of edges that still break the
order, each with the change that removes it; a new edge that breaks the order fails here with its file and line,
and a KNOWN edge that is gone fails too, so the list only shrinks.

Importing `a.b.c` also runs `a/__init__.py` and `a/b/__init__.py`: those package edges count (an L3 module that
imports a module of the `ascend` package runs `ascend/__init__.py`, which imports the atc driver)."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "matteconv"

# Layer of each module, by the longest matching dotted prefix (relative to matteconv); a module may import its own
# layer or lower ones.
LAYERS: dict[str, int] = {
    "": 0, "__init__": 0, "errors": 0, "numeric": 0, "fileio": 0, "proc": 0, "heap": 0, "cpuinfo": 0, "findings": 0,
    "preprocess": 1, "samples": 1, "seed_augment": 1, "verify.metrics": 1, "video": 1,
    "model": 2, "aipp": 2, "official": 2,
    "backends": 3, "export": 3, "fp16": 3, "int8": 3, "ascend.ops": 3, "ascend.caffe_oplist": 3,
    "ascend.onnx_oplist": 3,
    "ascend": 4,
    "verify": 5, "int8.amct": 5, "int8.amct_config": 5, "int8.job": 5, "int8.quantize": 5, "matte": 5,
    "deploy": 5, "train": 5, "reference": 5, "references": 5, "hard_frames": 5, "people": 5, "doctor": 5, "temporal_delta": 5,
    "cli": 6, "__main__": 6,
}

# (importer, imported) pairs that break the order today, with what removes them.
KNOWN: dict[tuple[str, str], str] = {
    ("int8.quantize", "verify.golden"): "golden data (GoldenSet, load_golden) moves to L1",
    ("video", "verify.golden"): "golden data (IMAGE_SUFFIXES, read_image) moves to L1",
    ("samples", "train.synth"): "the synthetic clip moves into train/ or synth is passed in",
    ("ascend.profile.speed", "ascend.profile.walk"): "output_transdata moves to cost.py (a cycle inside profile/)",
    ("int8.caffe_emu", "int8.emulate"): "deploy_params moves to int8/deploy.py, the dispatcher to int8/__init__.py",
    ("backends", "export.caffe.runner"): "CaffeBackend moves to backends/ (the review's 4.2): a cycle with export",
    ("model.onnx_import", "backends"): "the importer moves above export (it runs the exporter's parity rule)",
    ("model.onnx_import", "export.onnx.exporter"): "the importer moves above export",
    ("model.onnx_import", "export.parity"): "the importer moves above export",
    ("model.onnx_import", "reference"): "the importer moves above export",
}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(PKG).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return out


def _layer(mod: str) -> int:
    parts = mod.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LAYERS:
            return LAYERS[key]
    raise AssertionError(f"matteconv.{mod}: not in the layer table (tests/test_layers.py LAYERS)")


def _parents(mod: str) -> list[str]:
    parts = mod.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))] if mod else []


def _direct_imports(name: str, path: Path, is_pkg: bool, mods) -> list[tuple[str, int]]:
    """(imported module, line) for each import of a matteconv module in this file, function-level ones included."""
    pkg = name if is_pkg else ".".join(name.split(".")[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".") if pkg else []
                base = base[: len(base) - node.level + 1] if node.level > 1 else base
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif (node.module or "").split(".")[0] == "matteconv":
                target = node.module[len("matteconv."):] if node.module != "matteconv" else ""
            else:
                continue
            for a in node.names:
                sub = f"{target}.{a.name}" if target else a.name
                found.append((sub if sub in mods else target, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name[len("matteconv."):], node.lineno) for a in node.names if a.name.startswith("matteconv.")]
    return found


def _edges() -> dict[tuple[str, str], tuple[Path, int]]:
    """(importer, imported) -> where, for every import of a matteconv module; importing a module also runs each
    package __init__ on its way, an edge unless that __init__ imports nothing of ours (then running it is inert)."""
    mods = _modules()
    direct = {name: _direct_imports(name, path, is_pkg, mods) for name, (path, is_pkg) in mods.items()}
    inert = {name for name, (_, is_pkg) in mods.items() if is_pkg and not direct[name]}
    edges: dict[tuple[str, str], tuple[Path, int]] = {}
    for name, found in direct.items():
        for t, line in found:
            for dst in [*(p for p in _parents(t) if p not in inert), t]:
                if dst in mods and dst != name and dst not in _parents(name):
                    edges.setdefault((name, dst), (mods[name][0], line))
    return edges


def _known(edge: tuple[str, str]) -> bool:
    """Whether a KNOWN pair covers this edge (the same importer or a module inside it, the same imported module or
    a package on its way: importing verify.golden also runs verify/__init__.py)."""
    src, dst = edge
    return any((src == a or src.startswith(a + ".")) and (dst == b or b.startswith(dst + ".")) for a, b in KNOWN)


EDGES = _edges()


def test_imports_flow_down_the_layers():
    bad = [f"{p.relative_to(PKG.parent.parent)}:{line}: matteconv.{a} (L{_layer(a)}) imports matteconv.{b} "
           f"(L{_layer(b)})" for (a, b), (p, line) in sorted(EDGES.items())
           if _layer(b) > _layer(a) and not _known((a, b))]
    assert not bad, "imports against the layer order (docs/architecture.md):\n" + "\n".join(bad)


def test_known_exceptions_still_exist():
    """A KNOWN edge that is gone is taken off the list, so the list only shrinks."""
    gone = [k for k in KNOWN if not any(e[1] == k[1] and (e[0] == k[0] or e[0].startswith(k[0] + ".")) for e in EDGES)]
    assert not gone, f"remove from KNOWN (fixed): {gone}"


def test_every_cycle_runs_through_a_known_edge():
    """Without the KNOWN edges the module graph has no cycle (a layer rule alone misses one inside a package)."""
    graph: dict[str, set[str]] = {}
    for a, b in EDGES:
        if not _known((a, b)):
            graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (cyc := visit(m)):
                return cyc
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (cyc := visit(n)):
            raise AssertionError("import cycle: " + " -> ".join(f"matteconv.{m}" for m in cyc))


def test_the_walk_sees_deferred_imports():
    """The check itself: a function-level import is an edge (cli imports every command's library that way)."""
    assert any(a.startswith("cli.") and b.startswith("export") for a, b in EDGES)
    assert _layer("ascend.rules") == 4 and _layer("ascend.ops") == 3 and _layer("int8.quantize") == 5
