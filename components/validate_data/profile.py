"""A dataset's profile (what validate_data compares) and the checks over two profiles.

Plain numpy and JSON: no TensorFlow, so the checks are tested on numbers alone.

A profile (one split)::

    {"split": "train", "count": 54000, "class_names": [...],
     "label_share": [0.1, ...],            # per class, sums to 1
     "channel_mean": [72.9], "channel_std": [90.0],   # input pixel values as stored (0..255)
     "image_sizes": {"28x28x1": 1.0},      # share of the raw images per H x W x C
     "rejected_share": 0.0}                # ingest + preprocess rejections / all records
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

PROFILE_METRIC = "profile"  # metric prefix: profile.label_share.3, profile.channel_mean.0, ...


@dataclass(frozen=True)
class Finding:
    """The result of one check.

    Attributes:
        check: the check's name (its key under ``validate_data:``).
        value: the measure (see validate_data's Params); None when it could not be taken.
        limit: the configured limit.
        action: "warn" or "fail".
        tripped: whether the measure is beyond the limit.
        old, new: the values compared, as text (what the one-line message shows).
    """

    check: str
    value: float | None
    limit: float
    action: str
    tripped: bool
    old: str
    new: str

    def line(self, baseline: str) -> str:
        """``label_distribution: class 'Trouser' 0.100 -> 0.000 (1.000 > limit 0.05 ...)``."""
        if self.check in ("rejected_share", "min_class_share"):
            side = "<=" if self.check == "min_class_share" else ">"
            return (
                f"{self.check}: {self.new} ({self.value:.4g} {side} limit {self.limit:g}, "
                f"{self.action})"
            )
        return (
            f"{self.check}: {self.old} in the data of {baseline} -> {self.new} now "
            f"({self.value:.4g} > limit {self.limit:g}, {self.action})"
        )

    def to_json(self) -> dict:
        return asdict(self)


def build(split, count, class_names, labels, mean, std, sizes, rejected, total) -> dict:
    """A profile from its parts (see the module docstring); ``labels`` are class counts."""
    labels = np.asarray(labels, np.float64)
    n_sizes = sum(sizes.values()) or 1
    return {
        "split": split,
        "count": int(count),
        "class_names": list(class_names),
        "label_share": (labels / max(labels.sum(), 1.0)).round(6).tolist(),
        "channel_mean": [round(float(v), 4) for v in mean],
        "channel_std": [round(float(v), 4) for v in std],
        "image_sizes": {k: round(v / n_sizes, 6) for k, v in sorted(sizes.items())},
        "rejected_share": round(rejected / max(total, 1), 6),
    }


def to_metrics(profile: dict) -> dict[str, float]:
    """The profile as flat MLflow metrics (kept with the step's record, so cache hits show it)."""
    out = {f"{PROFILE_METRIC}.count": profile["count"]}
    out[f"{PROFILE_METRIC}.rejected_share"] = profile["rejected_share"]
    for key in ("label_share", "channel_mean", "channel_std"):
        out.update({f"{PROFILE_METRIC}.{key}.{i}": v for i, v in enumerate(profile[key])})
    out.update({f"{PROFILE_METRIC}.size.{k}": v for k, v in profile["image_sizes"].items()})
    return out


def from_metrics(metrics: dict[str, float], class_names: list[str]) -> dict | None:
    """The inverse of :func:`to_metrics` (None when the run logged no profile)."""
    prefix = f"{PROFILE_METRIC}."
    found = {k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix)}
    if "count" not in found:
        return None

    def vector(key):
        items = sorted((int(k.rsplit(".", 1)[1]), v) for k, v in found.items() if k.startswith(key))
        return [v for _, v in items]

    return {
        "count": int(found["count"]),
        "class_names": class_names,
        "label_share": vector("label_share."),
        "channel_mean": vector("channel_mean."),
        "channel_std": vector("channel_std."),
        "image_sizes": {k[5:]: v for k, v in found.items() if k.startswith("size.")},
        "rejected_share": found.get("rejected_share", 0.0),
    }


def _worst(old: list[float], new: list[float], measure) -> tuple[int, float]:
    n = max(len(old), len(new))
    old, new = np.pad(old, (0, n - len(old))), np.pad(new, (0, n - len(new)))
    values = [measure(o, x) for o, x in zip(old, new, strict=True)]
    i = int(np.argmax(values))
    return i, float(values[i])


def _label(profile: dict, i: int) -> str:
    names = profile.get("class_names") or []
    return f"class {names[i]!r}" if i < len(names) else f"class {i}"


def compare(new: dict, old: dict | None, params) -> list[Finding]:
    """Every check of ``params`` (validate_data's Params) on ``new`` vs ``old``.

    Checks that compare with the champion's data are left out when ``old`` is None.
    """
    found = []

    def add(name, value, old_text, new_text, tripped=None):
        limit, action = params.rule(name)
        over = value > limit if tripped is None else tripped
        found.append(Finding(name, value, limit, action, over, old_text, new_text))

    if old is not None:
        i, d = _worst(old["label_share"], new["label_share"], lambda o, x: abs(x - o))
        o, x = _at(old["label_share"], i), _at(new["label_share"], i)
        add("label_distribution", d, f"{_label(new, i)} share {o:.3f}", f"{x:.3f}")
        std = np.maximum(np.asarray(old["channel_std"], np.float64), 1e-6)
        shift = np.abs(np.subtract(new["channel_mean"], old["channel_mean"])) / std
        c = int(np.argmax(shift))
        add(
            "channel_mean",
            float(shift[c]),
            f"channel {c} mean {old['channel_mean'][c]:.2f}",
            f"{new['channel_mean'][c]:.2f}",
        )
        ratio = np.abs(np.asarray(new["channel_std"]) / std - 1.0)
        c = int(np.argmax(ratio))
        old_std, new_std = old["channel_std"][c], new["channel_std"][c]
        add("channel_std", float(ratio[c]), f"channel {c} std {old_std:.2f}", f"{new_std:.2f}")
        sizes = set(old["image_sizes"]) | set(new["image_sizes"])
        tv = 0.5 * sum(
            abs(new["image_sizes"].get(s, 0) - old["image_sizes"].get(s, 0)) for s in sizes
        )
        add("image_size", tv, f"sizes {_top(old)}", _top(new))
    share = new["rejected_share"]
    add("rejected_share", share, "", f"{share:.2%} of records rejected")
    shares = new["label_share"]
    i = int(np.argmin(shares))
    limit, _ = params.rule("min_class_share")
    text = f"smallest {_label(new, i)} share {shares[i]:.3f}"
    add("min_class_share", shares[i], "", text, tripped=shares[i] <= limit)
    return found


def _at(values: list[float], i: int) -> float:
    return values[i] if i < len(values) else 0.0


def _top(profile: dict) -> str:
    sizes = sorted(profile["image_sizes"].items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{k} {v:.0%}" for k, v in sizes)
