"""The zoo's light side: metadata of every registered model, read from ``catalog.json``.

``convflow models`` and the config checks (``train.model`` exists, its kind fits the task,
``train.model_kwargs`` are arguments its builder takes) read this file instead of importing
Keras and building graphs of up to 250M parameters. The file is written by
``python -m convflow.models.catalog`` (it builds every model once, to count parameters), and
a test keeps it equal to the live registry, so a model added without regenerating it fails.
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

CATALOG_FILE = Path(__file__).with_name("catalog.json")


@cache
def _rows() -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in json.loads(CATALOG_FILE.read_text())}


def rows(kind: str | None = None) -> list[dict[str, Any]]:
    """Every model's row (see ``zoo.describe``), sorted by name; ``kind`` filters."""
    return [r for _, r in sorted(_rows().items()) if kind is None or r["kind"] == kind]


def names() -> list[str]:
    """Every model name, sorted."""
    return sorted(_rows())


def entry(name: str) -> dict[str, Any]:
    """One model's row.

    Raises:
        KeyError: unknown name; the message suggests close names.
    """
    if name not in _rows():
        close = difflib.get_close_matches(name, list(_rows()), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise KeyError(f"unknown model; {hint}`convflow models` lists them")
    return _rows()[name]


def check(name: str, kwargs: Mapping[str, Any], kinds: Iterable[str] | None) -> None:
    """Checks a model choice against the catalog without building anything.

    Args:
        name: the zoo name.
        kwargs: extra builder arguments (``train.model_kwargs``).
        kinds: the zoo kinds the pipeline's task accepts; None skips the check.

    Raises:
        KeyError: unknown model. ValueError: its kind does not fit. TypeError: an argument
            its builder does not take (or one the pipeline sets itself).
    """
    row = entry(name)
    kinds = tuple(kinds) if kinds is not None else None
    if kinds is not None and row["kind"] not in kinds:
        raise ValueError(
            f"is a {row['kind']} model; this pipeline trains {' or '.join(kinds)} models "
            f"(`convflow models --kind {kinds[0]}`)"
        )
    reserved = {"input_shape", "num_classes", "classifier_activation"}
    for key in kwargs:
        if key in reserved:
            raise TypeError(f"model_kwargs.{key} is set by the pipeline; remove it")
        if key not in row["arguments"] and not row["accepts_any_kwargs"]:
            allowed = ", ".join(a for a in row["arguments"] if a not in reserved)
            raise TypeError(f"model_kwargs.{key} is not an argument of {name}; it takes {allowed}")


def write(names: list[str] | None = None, path: Path = CATALOG_FILE) -> int:
    """Builds registered models once and writes the catalog; returns the rows written.

    Args:
        names: only re-measure these models (the rest of the file is kept, and rows of
            models no longer registered are dropped); None re-measures all.
    """
    from convflow.models import zoo  # the heavy side: Keras and every family

    table = {row["name"]: row for row in json.loads(path.read_text())} if names else {}
    table = {n: r for n, r in table.items() if n in zoo.list_models()}
    table.update({row["name"]: row for row in zoo.describe(names)})
    path.write_text(json.dumps([table[n] for n in sorted(table)], indent=1) + "\n")
    return len(names) if names else len(table)


if __name__ == "__main__":
    # python -m convflow.models.catalog [NAME ...]: re-measure all models, or only NAMEs.
    print(f"wrote {write(sys.argv[1:] or None)} rows to {CATALOG_FILE}", file=sys.stderr)
