"""Cache keys and content fingerprints.

A step's key is sha256 over its component name, the source of the component's module and
of every project module it imports (transitively, found by reading the imports, so that
editing a helper invalidates the steps that use it), its resolved params, its input
fingerprints and the versions of the key packages.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib.util
import json
import sys
from collections.abc import Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

PROJECT_PACKAGES = ("convflow",)
KEY_PACKAGES = (
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "keras-cv",
    "apache-beam",
    "mlflow",
    "tensorflow-datasets",
    "numpy",
)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages whose upgrade may change a result."""
    out = {}
    for name in KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    out["python"] = ".".join(map(str, sys.version_info[:3]))
    return out


@cache
def _search_path(top: str) -> tuple[Path, ...]:
    """Where the top-level package ``top`` lives (its __path__), found without importing it."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return ()
    if spec is None:
        return ()
    if spec.submodule_search_locations is None:  # a top-level module, not a package
        return (Path(spec.origin).parent,) if spec.origin else ()
    return tuple(Path(p) for p in spec.submodule_search_locations)


def _module_file(name: str, roots: tuple[str, ...]) -> Path | None:
    """The source file of project module ``name``, found on disk.

    Walking the package folders (rather than ``importlib.util.find_spec``, which imports
    every parent package) keeps key computation free of imports: a fully cached run must not
    load Keras because some step's closure names ``convflow.models.zoo.build``.
    """
    parts = name.split(".")
    if parts[0] not in roots:
        return None
    dirs = list(_search_path(parts[0]))
    if len(parts) == 1:
        found = [d / "__init__.py" for d in dirs if (d / "__init__.py").is_file()]
        return found[0] if found else None
    for part in parts[1:-1]:
        dirs = [d / part for d in dirs if (d / part).is_dir()]
    last = parts[-1]
    for d in dirs:
        if (d / last / "__init__.py").is_file():
            return d / last / "__init__.py"
        if (d / f"{last}.py").is_file():
            return d / f"{last}.py"
    return None


def _named(node: ast.AST, package: str) -> set[str]:
    """Modules an import statement names (``from pkg import mod`` may name a submodule)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        parts = parts[: len(parts) - node.level + 1]
        base = ".".join([*parts, base] if base else parts)
    return {base, *(f"{base}.{alias.name}" for alias in node.names)}


def _imports(path: Path, module: str, roots: tuple[str, ...]) -> tuple[set[str], set[str]]:
    """Project modules ``path`` imports: (at import time, only inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    eager: set[str] = set()
    lazy: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                (lazy if in_function else eager).update(_named(child, package))
            inner = in_function or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            visit(child, inner)

    visit(tree, False)
    keep = lambda names: {n for n in names if n.split(".")[0] in roots}  # noqa: E731
    return keep(eager), keep(lazy) - keep(eager)


def _parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


@cache
def source_closure(module: str) -> tuple[tuple[str, str], ...]:
    """(module, sha256 of its source) for ``module`` and every project module it may run.

    The component's module and what it imports are followed through every import,
    including those inside functions (they run when the step calls them). A package that
    is only the parent of an imported module runs its ``__init__`` at import time, so for
    it, and for what that pulls in, only import-time imports are followed: importing
    ``models.layers.contrast`` must not make the step depend on every model of the zoo
    that ``models`` could load lazily.

    Project modules are those of PROJECT_PACKAGES and of the component's own top-level
    package (so components living outside convflow are hashed the same way).
    """
    roots = (*PROJECT_PACKAGES, module.split(".")[0])
    seen: dict[str, str] = {}
    full: set[str] = set()
    todo = [(module, True)]
    while todo:
        name, follow_lazy = todo.pop()
        if name in full or (name in seen and not follow_lazy):
            continue
        path = _module_file(name, roots)
        if path is None:
            continue
        seen[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        if follow_lazy:
            full.add(name)
        eager, lazy = _imports(path, name, roots)
        used = eager | lazy if follow_lazy else eager
        todo.extend((n, follow_lazy) for n in used)
        todo.extend((p, False) for n in used | {name} for p in _parents(n))
    return tuple(sorted(seen.items()))


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return str(value)


def step_key(
    component_name: str,
    module: str,
    params: Any,
    input_fingerprints: Mapping[str, str],
    versions: Mapping[str, str],
    facts: Mapping[str, Any] | None = None,
) -> str:
    payload = {
        "facts": dict(sorted((facts or {}).items())),
        "component": component_name,
        "code": source_closure(module),
        "params": params,
        "inputs": dict(sorted(input_fingerprints.items())),
        "versions": dict(sorted(versions.items())),
    }
    blob = json.dumps(payload, sort_keys=True, default=_jsonable)
    return hashlib.sha256(blob.encode()).hexdigest()


def fingerprint_dir(path: Path, exclude: tuple[str, ...] = ("artifact.json",)) -> str:
    """sha256 over the relative paths and contents of every file below ``path``."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        if rel in exclude:
            continue
        h.update(rel.encode() + b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()
