"""Cache keys and content fingerprints.

A step's key is sha256 over its component name, the source of the component's module and
of every project module it imports (transitively, found by reading the imports, so that
editing a helper invalidates the steps that use it), its resolved params, its input
fingerprints, the versions of the key packages, the pipeline facts it depends on and, for a
source step, the fingerprint of the data it reads.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import os
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
def _spec_of(name: str) -> tuple[tuple[Path, ...], Path | None]:
    """(package folders, source file) of a top-level or second-level module, or empty.

    ``find_spec("convflow.models")`` imports only ``convflow`` (a namespace package, no
    code) and resolves through whatever installed it (a path, an editable install's finder).
    """
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return (), None
    if spec is None:
        return (), None
    folders = tuple(Path(p) for p in spec.submodule_search_locations or ())
    origin = Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    return folders, origin


def _module_file(name: str, roots: tuple[str, ...]) -> Path | None:
    """The source file of project module ``name``, found without importing it.

    The first two levels resolve through ``importlib`` (:func:`_spec_of`); deeper modules
    are found by walking the package folders, since ``importlib.util.find_spec`` would
    import every parent package: a fully cached run must not load Keras because some step's
    closure names ``convflow.models.zoo.build``.
    """
    parts = name.split(".")
    if parts[0] not in roots:
        return None
    folders, origin = _spec_of(".".join(parts[:2]))
    if len(parts) <= 2:
        return origin
    dirs = list(folders)
    for part in parts[2:-1]:
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


# Statement lists an import statement can sit in (expressions hold none, so they are skipped).
_BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")


def _imports(path: Path, module: str, roots: tuple[str, ...]) -> tuple[set[str], set[str]]:
    """Project modules ``path`` imports: (at import time, only inside functions)."""
    stat = path.stat()
    eager, lazy = _parsed_imports(str(path), stat.st_mtime_ns, stat.st_size, module)
    keep = lambda names: {n for n in names if n.split(".")[0] in roots}  # noqa: E731
    return keep(eager), keep(lazy) - keep(eager)


@cache
def _parsed_imports(path: str, mtime_ns: int, size: int, module: str):
    # Keyed by modification time and size, as Python's own bytecode cache is: one process
    # re-reads a file that changed, and the next process finds the parse in IMPORTS_CACHE.
    entry = f"{path}\0{module}"
    known = _imports_on_disk().get(entry)
    if known and known[:2] == [mtime_ns, size]:
        return frozenset(known[2]), frozenset(known[3])
    tree = ast.parse(Path(path).read_text(), filename=path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    eager: set[str] = set()
    lazy: set[str] = set()
    todo: list[tuple[ast.AST, bool]] = [(tree, False)]
    while todo:
        node, in_function = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            (lazy if in_function else eager).update(_named(node, package))
            continue
        inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for block in _BLOCKS:
            todo.extend((child, inner) for child in getattr(node, block, ()) or ())
    _imports_on_disk()[entry] = [mtime_ns, size, sorted(eager), sorted(lazy)]
    _IMPORTS_DIRTY.add(entry)
    return frozenset(eager), frozenset(lazy)


def imports_cache_file() -> Path:
    """Where parsed imports are kept between processes: ``$CONVFLOW_CACHE_DIR/imports.json``
    (default ``$XDG_CACHE_HOME/convflow`` or ``~/.cache/convflow``).

    A cache only: a missing, unreadable or corrupt file is parsed again, never an error.
    """
    base = os.environ.get("CONVFLOW_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = str(Path(xdg) / "convflow")
    return Path(base) / "imports.json"


_IMPORTS_DIRTY: set[str] = set()


@cache
def _imports_on_disk() -> dict[str, list]:
    try:
        known = json.loads(imports_cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _save_imports() -> None:
    """Writes the parses made by this process (atomically; a failure only costs speed)."""
    if not _IMPORTS_DIRTY:
        return
    path = imports_cache_file()
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    known = _imports_on_disk()
    for entry in [e for e in known if not os.path.exists(e.partition("\0")[0])]:
        del known[entry]  # files deleted since (temporary projects, moved checkouts)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(known))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):  # ENOTDIR too when the folder could not be made
            tmp.unlink()
        return
    _IMPORTS_DIRTY.clear()


def _parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


@cache
def source_closure(module: str, task: str | None = None) -> tuple[tuple[str, str], ...]:
    """(module, sha256 of its source) for ``module`` and every project module it may run.

    The component's module and what it imports are followed through every import,
    including those inside functions (they run when the step calls them). A package that
    is only the parent of an imported module runs its ``__init__`` at import time, so for
    it, and for what that pulls in, only import-time imports are followed: importing
    ``models.layers.contrast`` must not make the step depend on every model of the zoo
    that ``models`` could load lazily.

    Project modules are those of PROJECT_PACKAGES and of the component's own top-level
    package (so components living outside convflow are hashed the same way).

    With ``task`` (the pipeline's task name), the modules of the *other* tasks
    (``components/tasks/<other>*.py``) are left out: the task registry imports every task,
    but a classification step never runs detection's code, so editing YOLO must not re-run
    a classification pipeline's Beam job.
    """
    roots = (*PROJECT_PACKAGES, module.split(".")[0])
    other_task = _other_task_filter(task)
    seen: dict[str, str] = {}
    full: set[str] = set()
    files: dict[str, Path | None] = {}  # names repeat a lot: `from a.b import c` names a.b.c
    todo = [(module, True)]
    while todo:
        name, follow_lazy = todo.pop()
        if name in full or (name in seen and not follow_lazy) or other_task(name):
            continue
        if name not in files:
            files[name] = _module_file(name, roots)
        path = files[name]
        if path is None:
            continue
        if name not in seen:
            seen[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        if follow_lazy:
            full.add(name)
        eager, lazy = _imports(path, name, roots)
        used = eager | lazy if follow_lazy else eager
        todo.extend((n, follow_lazy) for n in used)
        todo.extend((p, False) for n in used | {name} for p in _parents(n))
    _save_imports()
    return tuple(sorted(seen.items()))


TASKS_PACKAGE = "convflow.components.tasks."


def _other_task_filter(task: str | None):
    """A predicate: is this module one of another task's modules (tasks/<name>*.py)?"""
    if task is None:
        return lambda name: False

    def other(name: str) -> bool:
        if not name.startswith(TASKS_PACKAGE):
            return False
        leaf = name[len(TASKS_PACKAGE) :]
        return leaf != "base" and not leaf.startswith(task)

    return other


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return str(value)


def key_parts(
    component_name: str,
    module: str,
    params: Any,
    input_fingerprints: Mapping[str, str],
    versions: Mapping[str, str],
    facts: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The parts a step's key hashes, as JSON data (stored with the published step, so a
    later miss can say which part changed)."""
    parts = {
        "facts": dict(sorted((facts or {}).items())),
        "component": component_name,
        "code": dict(source_closure(module, (facts or {}).get("task"))),
        "params": params,
        "inputs": dict(sorted(input_fingerprints.items())),
        "versions": dict(sorted(versions.items())),
    }
    if source is not None:
        parts["source"] = dict(source)
    return json.loads(json.dumps(parts, sort_keys=True, default=_jsonable))


def digest(parts: Mapping[str, Any]) -> str:
    """The cache key: sha256 of the key parts' canonical JSON."""
    blob = json.dumps(parts, sort_keys=True, default=_jsonable)
    return hashlib.sha256(blob.encode()).hexdigest()


def step_key(*args: Any, **kwargs: Any) -> str:
    """``digest(key_parts(...))``."""
    return digest(key_parts(*args, **kwargs))


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
