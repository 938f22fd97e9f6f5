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
