"""Why a step's cache missed, in one line, from the key parts stored with published steps.

Every published step keeps the parts of its key (``key_parts`` in step.json), and
``<root>/.latest/<step>.json`` holds the parts the step last ran or hit with. A miss is
explained by comparing the new parts with those: the first run, ``--force``, ``--from``,
params old -> new, project source files, an input (with the upstream step that made it),
the source data, package versions, pipeline facts, or an external effect that is gone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LATEST_DIR = ".latest"
SHOWN = 3  # changed items named per part; the rest is counted


def latest_path(root: Path, step: str) -> Path:
    return Path(root) / LATEST_DIR / f"{step}.json"


def remember(root: Path, step: str, key: str, parts: Mapping[str, Any]) -> None:
    """Records the parts the step last ran or hit with (atomic replace)."""
    path = latest_path(root, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{step}.json.{os.getpid()}")
    tmp.write_text(json.dumps({"key": key, "parts": parts}, sort_keys=True))
    os.replace(tmp, path)


def previous(root: Path, step: str) -> dict[str, Any] | None:
    """The parts the step last ran or hit with, or None (never, or an unreadable record)."""
    try:
        return json.loads(latest_path(root, step).read_text())["parts"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): data}


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _names(items: list[str]) -> str:
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def _changed(old: Mapping, new: Mapping) -> list[str]:
    a, b = _flat(old), _flat(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k, "<unset>") != b.get(k, "<unset>"))


def _params(old: Mapping, new: Mapping) -> str:
    a, b = _flat(old), _flat(new)
    keys = _changed(old, new)
    shown = [f"{k} {_short(a.get(k))} → {_short(b.get(k))}" for k in keys[:SHOWN]]
    more = f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
    return "params changed: " + ", ".join(shown) + more


def _source(old: Mapping, new: Mapping) -> str:
    lo, ln = old.get("listing"), new.get("listing")
    if old.get("how") != new.get("how"):
        return f"source data fingerprint changed from {old.get('how')} to {new.get('how')}"
    if isinstance(lo, Mapping) and isinstance(ln, Mapping):
        parts = []
        for label, files in (
            ("added", sorted(ln.keys() - lo.keys())),
            ("deleted", sorted(lo.keys() - ln.keys())),
            ("changed", sorted(k for k in lo.keys() & ln.keys() if lo[k] != ln[k])),
        ):
            if files:
                parts.append(f"{label} {_names([Path(f).name for f in files])}")
        if parts:
            return "source data changed: " + "; ".join(parts)
    return (
        f"source data changed ({new.get('how')} fingerprint {str(old.get('digest'))[:12]} → "
        f"{str(new.get('digest'))[:12]}: {old.get('files')} → {new.get('files')} files, "
        f"{old.get('bytes')} → {new.get('bytes')} bytes)"
    )


def explain(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], upstream: Mapping[str, str]
) -> str:
    """One line: what differs between the parts the step last ran with and ``new``.

    Args:
        old: the previous key parts (None: the step never ran in this store).
        new: the key parts of this run.
        upstream: input name -> the step that produced it.
    """
    if old is None:
        return "first run (no earlier result in this artifact store)"
    reasons = []
    if old.get("component") != new.get("component"):
        reasons.append(f"component {old.get('component')} → {new.get('component')}")
    if old.get("params") != new.get("params"):
        reasons.append(_params(old.get("params") or {}, new.get("params") or {}))
    if old.get("source") != new.get("source"):
        reasons.append(_source(old.get("source") or {}, new.get("source") or {}))
    inputs = _changed(old.get("inputs") or {}, new.get("inputs") or {})
    if inputs:
        named = [f"{k} (from {upstream[k]})" if k in upstream else k for k in inputs]
        reasons.append(f"input changed: {_names(named)}")
    code = _changed(old.get("code") or {}, new.get("code") or {})
    if code:
        reasons.append(f"project source changed: {_names(code)}")
    versions = _changed(old.get("versions") or {}, new.get("versions") or {})
    if versions:
        ov, nv = old.get("versions") or {}, new.get("versions") or {}
        shown = [f"{k} {ov.get(k, '-')} → {nv.get(k, '-')}" for k in versions]
        reasons.append(f"package versions changed: {_names(shown)}")
    facts = _changed(old.get("facts") or {}, new.get("facts") or {})
    if facts:
        of, nf = old.get("facts") or {}, new.get("facts") or {}
        shown = [f"{k} {_short(of.get(k))} → {_short(nf.get(k))}" for k in facts]
        reasons.append(f"pipeline facts changed: {_names(shown)}")
    return "; ".join(reasons) or "key changed (no stored part differs; an older store format?)"
