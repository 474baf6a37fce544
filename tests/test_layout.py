"""The package layout holds: imports point down the data flow, no private name crosses a package, small modules.

Walks the AST of every module of ``skinimg`` (nothing is imported to find the edges).  The layers:

    cli -> train -> batch -> report
                 \\-> session -> calibrate, segment, indices -> color -> io
    phantom -> color, io          (the truth generator never imports the code under test)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "skinimg"

#: Packages nothing under the concept packages may import.
CONCEPT = {"io", "color", "calibrate", "segment", "indices", "session", "stats"}
FORBIDDEN_FOR_CONCEPT = {"phantom", "train", "batch", "report", "cli"}
#: What each package may import (besides the standard library, third-party packages, ``skinimg.errors`` and
#: ``skinimg.__version__``).
ALLOWED = {
    "io": set(),
    "stats": set(),  # pure statistics of 1-D arrays (agreement, reliability): a leaf beside io
    "color": {"io"},
    "calibrate": {"io", "color"},
    "segment": {"io", "color"},
    "indices": {"io", "color"},
    "session": {"io", "color", "calibrate", "segment", "indices", "stats"},
    "phantom": {"io", "color"},
    "report": {"io"},
    "batch": {"io", "color", "calibrate", "segment", "indices", "session", "report", "stats"},
    "train": {"io", "color", "calibrate", "segment", "indices", "session", "phantom", "batch", "stats"},
    "cli": {"io", "color", "calibrate", "segment", "indices", "session", "phantom", "batch", "report", "train", "stats"},
}
TOP_LEVEL = {"__init__", "__main__", "errors"}  # skinimg/<name>.py modules that belong to no subpackage
MAX_LINES = 600


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        yield path, ["skinimg", *rel.parts]


def _package(parts: list[str]) -> str:
    """``skinimg.segment.model`` -> ``segment``; top-level modules -> their own name."""
    return parts[1]


def _resolve(module_parts: list[str], is_init: bool, node: ast.ImportFrom) -> str | None:
    if node.level == 0:
        return node.module
    base = module_parts if is_init else module_parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path, parts: list[str]):
    """(line, imported module, imported names or None, alias -> module of ``import x.y as z`` / ``from . import y``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_init = path.name == "__init__.py"
    module_parts = parts[:-1] if is_init else parts
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, None, {(a.asname or a.name.split(".")[0]): a.name}
        elif isinstance(node, ast.ImportFrom):
            mod = _resolve(module_parts if not is_init else parts[:-1] + ["__init__"], is_init, node)
            aliases = {(a.asname or a.name): f"{mod}.{a.name}" for a in node.names}
            yield node.lineno, mod, [a.name for a in node.names], aliases


def _edges():
    out = []
    for path, parts in _modules():
        for line, mod, names, _ in _imports(path, parts):
            if mod and mod.split(".")[0] == "skinimg":
                targets = [mod] + ([f"{mod}.{n}" for n in names] if names else [])
                out.append((path, parts, line, mod, names, targets))
    return out


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def test_imports_point_down_the_layers():
    bad = []
    for path, parts, line, mod, names, targets in _edges():
        src = _package(parts)
        if src in TOP_LEVEL:
            continue
        dst_parts = mod.split(".")
        if len(dst_parts) == 1:  # from skinimg import __version__ / from .. import color
            dsts = [n for n in (names or []) if (PKG / n).is_dir()]
        else:
            dsts = [dst_parts[1]]
        for dst in dsts:
            if dst == src or dst in TOP_LEVEL:
                continue
            if src in CONCEPT and dst in FORBIDDEN_FOR_CONCEPT:
                bad.append(f"{_where(path, line)}: {src} imports {dst} (concept packages never import {dst})")
            elif dst not in ALLOWED[src]:
                bad.append(f"{_where(path, line)}: {src} imports {dst} (allowed: {sorted(ALLOWED[src])})")
    assert not bad, "\n".join(bad)


def test_no_private_name_crosses_a_package():
    """``from skinimg.x.y import _name`` and ``module._name`` of another package's module are refused."""
    bad = []
    for path, parts in _modules():
        src = _package(parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module_of = {}  # local alias -> imported skinimg module (dotted)
        for line, mod, names, aliases in _imports(path, parts):
            if not mod or mod.split(".")[0] != "skinimg":
                continue
            dst = mod.split(".")[1] if len(mod.split(".")) > 1 else None
            for n in names or []:
                if n.startswith("_") and not n.startswith("__") and dst not in (None, src):
                    bad.append(f"{_where(path, line)}: imports {mod}.{n}")
            module_of.update(aliases)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.attr.startswith("_") \
                    and not node.attr.startswith("__"):
                target = module_of.get(node.value.id, "")
                tparts = target.split(".")
                if tparts[0] == "skinimg" and len(tparts) > 1 and (PKG / tparts[1]).is_dir() and tparts[1] != src:
                    bad.append(f"{_where(path, node.lineno)}: uses {target}.{node.attr}")
    assert not bad, "\n".join(bad)


def test_the_layer_test_catches_what_it_should(tmp_path):
    """The import walk sees relative and absolute imports and private names (a planted bad module is found)."""
    bad_mod = PKG / "segment" / "_layout_probe.py"
    bad_mod.write_text("from ..batch import analyze_paths\nfrom skinimg.io.write import _UMASK\n"
                       "from skinimg.indices import kernels\nx = kernels._box_width\n", encoding="utf-8")
    try:
        with pytest.raises(AssertionError, match="segment imports batch"):
            test_imports_point_down_the_layers()
        with pytest.raises(AssertionError) as err:
            test_no_private_name_crosses_a_package()
        assert "skinimg.io.write._UMASK" in str(err.value) and "skinimg.indices.kernels._box_width" in str(err.value)
    finally:
        bad_mod.unlink()


def test_only_cli_imports_click_and_only_train_imports_torch():
    bad = []
    for path, parts in _modules():
        src = _package(parts)
        for line, mod, _, _ in _imports(path, parts):
            top = (mod or "").split(".")[0]
            if top == "click" and src != "cli":
                bad.append(f"{_where(path, line)}: imports click")
            if top == "torch" and src != "train":
                bad.append(f"{_where(path, line)}: imports torch")
    assert not bad, "\n".join(bad)


def test_modules_are_small():
    big = [f"{p.relative_to(ROOT)}: {n} lines" for p, _ in _modules()
           if (n := p.read_text(encoding="utf-8").count("\n")) > MAX_LINES]
    assert not big, "\n".join(big)


def test_every_package_states_its_public_names_and_is_installed():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    import importlib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    for init in sorted(PKG.rglob("__init__.py")):
        name = ".".join(("skinimg", *init.parent.relative_to(PKG).parts)).rstrip(".")
        assert name in listed, f"{name} is missing from [tool.setuptools] packages in pyproject.toml"
        mod = importlib.import_module(name)
        assert isinstance(getattr(mod, "__all__", None), list), f"{name} has no __all__"
        missing = [n for n in mod.__all__ if not hasattr(mod, n)]
        assert not missing, f"{name}.__all__ names what it does not define: {missing}"
