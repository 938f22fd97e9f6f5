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

PROJECT_PACKAGES = ("pipelines", "components", "models")
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


def _module_file(name: str, roots: tuple[str, ...]) -> Path | None:
    if name.split(".")[0] not in roots:
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _imports(path: Path, module: str, roots: tuple[str, ...]) -> set[str]:
    """Project modules named by any import statement in ``path`` (also inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            # `from pkg import mod` may name a submodule.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    closed = set()
    for name in found:
        # Importing a.b.c runs a/__init__ and a/b/__init__ as well.
        parts = name.split(".")
        closed.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return {n for n in closed if n.split(".")[0] in roots}


@cache
def source_closure(module: str) -> tuple[tuple[str, str], ...]:
    """(module, sha256 of its source) for ``module`` and every project module it imports.

    Project modules are those of PROJECT_PACKAGES and of the component's own top-level
    package (so components living outside convflow are hashed the same way).
    """
    roots = (*PROJECT_PACKAGES, module.split(".")[0])
    seen: dict[str, str] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name, roots)
        if path is None:
            continue
        seen[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        todo.extend(_imports(path, name, roots) - set(seen))
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
