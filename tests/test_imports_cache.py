"""The parsed-imports cache that lets a fully cached run skip parsing the project's sources."""

from __future__ import annotations

import ast
import json
import os
import sys

import pytest
from convflow.pipelines import cache


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A throwaway top-level package `cfproj` (a.py imports b) and a private cache folder."""
    pkg = tmp_path / "src" / "cfproj"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cfproj import b\n")
    (pkg / "b.py").write_text("X = 1\n")
    (pkg / "c.py").write_text("Y = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.setenv("CONVFLOW_CACHE_DIR", str(tmp_path / "cache"))
    _forget_this_process()
    yield pkg
    _forget_this_process()


def _forget_this_process():
    """What a new process starts with: nothing parsed, the disk cache not yet read."""
    cache.source_closure.cache_clear()
    cache._parsed_imports.cache_clear()
    cache._imports_on_disk.cache_clear()
    cache._spec_of.cache_clear()
    for name in [m for m in sys.modules if m.split(".")[0] == "cfproj"]:
        del sys.modules[name]  # find_spec("cfproj.a") imported the package


def _closure() -> set[str]:
    return {name for name, _ in cache.source_closure("cfproj.a")}


def test_a_new_process_reuses_the_parses_and_sees_an_edit(project, monkeypatch):
    assert _closure() == {"cfproj", "cfproj.a", "cfproj.b"}
    saved = json.loads(cache.imports_cache_file().read_text())
    assert any(entry.startswith(str(project / "a.py")) for entry in saved)

    _forget_this_process()

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed again although the file did not change")

    monkeypatch.setattr(ast, "parse", no_parsing)
    assert _closure() == {"cfproj", "cfproj.a", "cfproj.b"}
    monkeypatch.undo()  # parsing allowed again; the cache folder env var is dropped too
    monkeypatch.setenv("CONVFLOW_CACHE_DIR", str(cache.imports_cache_file().parent))
    monkeypatch.syspath_prepend(str(project.parent))

    _forget_this_process()
    a = project / "a.py"
    before = a.stat()
    a.write_text("from cfproj import c\n")  # same size: only the modification time differs
    os.utime(a, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert _closure() == {"cfproj", "cfproj.a", "cfproj.c"}


def test_a_corrupt_or_unwritable_cache_only_costs_a_parse(project, tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / "imports.json").write_text("{not json")
    assert _closure() == {"cfproj", "cfproj.a", "cfproj.b"}
    assert json.loads((folder / "imports.json").read_text())  # rewritten whole

    _forget_this_process()
    monkeypatch.setenv("CONVFLOW_CACHE_DIR", str(tmp_path / "a-file" / "below"))
    (tmp_path / "a-file").write_text("")  # the cache folder cannot be made
    assert _closure() == {"cfproj", "cfproj.a", "cfproj.b"}


def test_entries_of_deleted_files_are_dropped_on_save(project):
    _closure()
    gone = str(project.parent / "removed.py")
    cache._imports_on_disk()[f"{gone}\0removed"] = [1, 1, [], []]
    cache._IMPORTS_DIRTY.add("x")
    cache._save_imports()
    saved = json.loads(cache.imports_cache_file().read_text())
    assert not [e for e in saved if e.startswith(gone)]
    assert [e for e in saved if e.startswith(str(project / "b.py"))]
