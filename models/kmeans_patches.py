"""First-layer kernels learned by k-means on whitened image patches (Coates & Ng 2011).

Coates, Lee & Ng (2011, "An Analysis of Single-Layer Networks in Unsupervised Feature
Learning") and Coates & Ng (2011/2012, "Learning Feature Representations with K-means")
get competitive first-layer features without labels or back-propagation:

1. extract random patches of the kernel's size from the training images;
2. normalize each patch (subtract its mean, divide by sqrt(variance + ε_norm));
3. ZCA-whiten the patches: W = V (D + ε_zca)^-1/2 Vᵀ from the patch covariance V D Vᵀ;
4. run spherical ("gain-shape") k-means; each unit-norm centroid is one kernel.

The centroids live in whitened space. With ``fold_whitening=True`` (default) the kernel is
W·d, so a convolution on (contrast-normalized) input computes d·W(x − m) up to a constant per
filter, i.e. the whitening is folded into the layer. Everything is numpy and seeded.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def _as_images(patches_from):
    images = np.load(patches_from) if isinstance(patches_from, str) else np.asarray(patches_from)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(
            f"patches_from must be images (N, H, W) or (N, H, W, C); got shape {images.shape}"
        )
    return images.astype("float64")


def extract_patches(images, size, count, rng):
    """``count`` random (kh, kw, C) patches as rows of a (count, kh·kw·C) matrix."""
    n, h, w, _ = images.shape
    kh, kw = size
    if kh > h or kw > w:
        raise ValueError(f"kernel {kh}×{kw} is larger than the {h}×{w} images in patches_from")
    idx = rng.integers(0, n, count)
    top = rng.integers(0, h - kh + 1, count)
    left = rng.integers(0, w - kw + 1, count)
    rows = top[:, None, None] + np.arange(kh)[None, :, None]  # (count, kh, 1)
    cols = left[:, None, None] + np.arange(kw)[None, None, :]  # (count, 1, kw)
    patches = images[idx[:, None, None], rows, cols]  # (count, kh, kw, C)
    return patches.reshape(count, -1)


def zca_whitening(patches, epsilon):
    """Returns (mean, W) with W = V (D + ε)^-1/2 Vᵀ; whitened = (x − mean) @ W."""
    mean = patches.mean(axis=0)
    cov = np.cov(patches - mean, rowvar=False)
    eigvals, eigvecs = np.linalg.eigh(cov)
    eigvals = np.clip(eigvals, 0.0, None)
    return mean, (eigvecs / np.sqrt(eigvals + epsilon)) @ eigvecs.T


def spherical_kmeans(data, k, iterations, rng):
    """Coates & Ng 2012, Alg. 1: unit-norm centroids, assignment by largest |projection|."""
    centroids = rng.normal(size=(k, data.shape[1]))
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    for _ in range(iterations):
        proj = data @ centroids.T  # (n, k)
        best = np.argmax(np.abs(proj), axis=1)
        codes = np.zeros_like(proj)
        codes[np.arange(len(data)), best] = proj[np.arange(len(data)), best]
        # "+ centroids" damps the update and keeps empty clusters where they were.
        centroids = codes.T @ data + centroids
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return centroids


def kmeans_patch_kernels(
    images, kernel_shape, num_patches=10000, norm_epsilon=10.0, zca_epsilon=0.1,
    iterations=10, fold_whitening=True, seed=0,
):  # fmt: skip
    """Learns a (kh, kw, C, k) kernel from images; see the module docstring.

    Args:
        images: (N, H, W) or (N, H, W, C) array or path to a .npy file.
        kernel_shape: (kh, kw, C, k).
        num_patches: how many random patches k-means sees.
        norm_epsilon: ε_norm of the per-patch contrast normalization; 10 suits 0–255 pixel
            values (Coates et al.); use about 10/255² ≈ 1.5e-4 for [0, 1] images.
        zca_epsilon: ε_zca; larger keeps more low-frequency structure.
        iterations: k-means iterations.
        fold_whitening: return W·d instead of the whitened-space centroid d.
        seed: the only source of randomness.

    Returns:
        ``(kernel, info)``: the float64 kernel and a dict with ``mean``, ``whitening`` (W),
        ``centroids`` (k, kh·kw·C), unit norm.
    """
    kh, kw, cin, k = kernel_shape
    images = _as_images(images)
    if images.shape[-1] != cin:
        raise ValueError(
            f"patches_from has {images.shape[-1]} channels but the layer's input has {cin}"
        )
    rng = np.random.default_rng(seed)
    patches = extract_patches(images, (kh, kw), num_patches, rng)
    patches = patches - patches.mean(axis=1, keepdims=True)
    patches /= np.sqrt(patches.var(axis=1, keepdims=True) + norm_epsilon)
    mean, whitening = zca_whitening(patches, zca_epsilon)
    centroids = spherical_kmeans((patches - mean) @ whitening, k, iterations, rng)
    filters = centroids @ whitening if fold_whitening else centroids  # W symmetric
    kernel = filters.T.reshape(kh, kw, cin, k)
    return kernel, {"mean": mean, "whitening": whitening, "centroids": centroids}


@keras.saving.register_keras_serializable(package="convflow")
class KMeansPatches(keras.initializers.Initializer):
    """Keras initializer wrapping :func:`kmeans_patch_kernels` (computed on first call).

    Args:
        patches_from: images array, or a path to a .npy file (keeps the config small).
        kernel: the learned kernel as nested lists; filled in after the first call so a saved
            model's config re-creates the same kernel without the images.
        Other args: as :func:`kmeans_patch_kernels`.
    """

    def __init__(
        self, patches_from=None, num_patches=10000, norm_epsilon=10.0, zca_epsilon=0.1,
        iterations=10, fold_whitening=True, seed=0, kernel=None,
    ):  # fmt: skip
        self.patches_from = patches_from
        self.options = {
            "num_patches": int(num_patches),
            "norm_epsilon": float(norm_epsilon),
            "zca_epsilon": float(zca_epsilon),
            "iterations": int(iterations),
            "fold_whitening": bool(fold_whitening),
            "seed": seed,
        }
        self.kernel = None if kernel is None else np.asarray(kernel, dtype="float64")

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) != 4:
            raise ValueError(f"kmeans initializes 2-D conv kernels (kh, kw, in, out); got {shape}")
        if self.kernel is None or self.kernel.shape != shape:
            if self.patches_from is None:
                raise ValueError(
                    "the kmeans initializer needs patches_from=<images array or .npy path> "
                    f"to learn a {shape} kernel"
                )
            self.kernel, _ = kmeans_patch_kernels(self.patches_from, shape, **self.options)
        return ops.convert_to_tensor(self.kernel, dtype=dtype)

    def get_config(self):
        path = self.patches_from if isinstance(self.patches_from, str) else None
        kernel = None if self.kernel is None else self.kernel.tolist()
        return {"patches_from": path, **self.options, "kernel": kernel}
