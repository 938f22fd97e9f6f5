"""Seeded, stratified splitting and sampling."""

from __future__ import annotations

import numpy as np


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Splits indices so that ``fraction`` of every class goes to the second part.

    Returns:
        (kept indices, carved indices), each sorted.
    """
    rng = np.random.default_rng(seed)
    kept, carved = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n = round(fraction * len(idx))
        carved.append(idx[:n])
        kept.append(idx[n:])
    join = lambda parts: np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)  # noqa: E731
    return join(kept), join(carved)


def stratified_sample(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """At most ``size`` indices, keeping class proportions."""
    if size >= len(labels):
        return np.arange(len(labels))
    _, sample = stratified_split(labels, size / len(labels), seed)
    return sample


def take(images, idx: np.ndarray):
    """Indexes an N×H×W×C array or a list of arrays."""
    if isinstance(images, np.ndarray):
        return images[idx]
    return [images[i] for i in idx]


def maybe_stack(images):
    """A list of same-shape images becomes one array; mixed sizes stay a list."""
    if isinstance(images, np.ndarray) or not images:
        return images
    first = images[0].shape
    if all(im.shape == first for im in images):
        return np.stack(images)
    return images


def _cut(images: list, targets: list, fraction: float, seed: int):
    """Seeded shuffle; returns ((kept images, kept targets), (cut images, cut targets))."""
    order = np.random.default_rng(seed).permutation(len(images))
    n = round(fraction * len(images))
    pick = lambda idx: ([images[i] for i in idx], [targets[i] for i in idx])  # noqa: E731
    return pick(np.sort(order[n:])), pick(np.sort(order[:n]))


def carve(splits: dict, p, stack_targets: bool) -> dict:
    """train/validation/test for records whose targets are not class labels (masks, boxes).

    ``all`` is cut into train and test (``p.test_fraction``, seed ``p.seed``), a missing
    validation split from train (``p.validation_fraction``, ``p.seed + 1``), and
    ``p.max_examples`` keeps a seeded sample of each split (``p.seed + 2``). Images are
    stacked when they share one shape; targets too when ``stack_targets`` (masks, not boxes).

    Returns:
        ``{split: (images, targets)}`` for the splits present, in train/validation/test order.
    """
    splits = {s: (list(im), list(tg)) for s, (im, tg) in splits.items()}
    if "all" in splits:
        splits["train"], splits["test"] = _cut(*splits.pop("all"), p.test_fraction, p.seed)
    if "validation" not in splits and "train" in splits:
        splits["train"], splits["validation"] = _cut(
            *splits["train"], p.validation_fraction, p.seed + 1
        )
    if p.max_examples:
        for s, (images, targets) in splits.items():
            if len(images) > p.max_examples:
                keep = 1 - p.max_examples / len(images)
                splits[s] = _cut(images, targets, keep, p.seed + 2)[0]
    out = {}
    for s in ("train", "validation", "test"):
        if s in splits:
            images = maybe_stack(splits[s][0])
            targets = splits[s][1]
            if stack_targets and isinstance(images, np.ndarray):
                targets = np.stack(targets)
            out[s] = (images, targets)
    return out
