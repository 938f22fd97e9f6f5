"""Pixel and class weights for segmentation losses: median frequency and U-Net's border map."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

IGNORE_INDEX = 255


def median_frequency_weights(pixels: np.ndarray, image_pixels: np.ndarray) -> np.ndarray:
    """Median-frequency class balancing (Eigen & Fergus 2015; SegNet §4).

    ``freq_c = pixels_c / image_pixels_c``, where ``image_pixels_c`` counts all pixels of the
    images in which class c occurs; ``w_c = median(freq) / freq_c``. A class that never
    occurs gets weight 0 (it has no pixels to weigh).

    Args:
        pixels: ``(K,)`` pixels of each class over the training split.
        image_pixels: ``(K,)`` pixels of the training images that contain each class.

    Returns:
        ``(K,) float64`` weights.
    """
    pixels, image_pixels = np.asarray(pixels, np.float64), np.asarray(image_pixels, np.float64)
    present = (pixels > 0) & (image_pixels > 0)
    freq = np.divide(pixels, image_pixels, out=np.zeros_like(pixels), where=present)
    if not present.any():
        return np.ones_like(pixels)
    median = np.median(freq[present])
    return np.divide(median, freq, out=np.zeros_like(freq), where=present)


def class_pixel_counts(masks: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(pixels, image_pixels)`` of each class over ``(N, H, W)`` masks (ignore left out)."""
    pixels = np.zeros(num_classes, np.int64)
    image_pixels = np.zeros(num_classes, np.int64)
    for mask in masks:
        counts = np.bincount(mask[mask != IGNORE_INDEX].ravel(), minlength=num_classes)
        counts = counts[:num_classes]
        pixels += counts
        image_pixels[counts > 0] += mask.size
    return pixels, image_pixels


def unet_weight_map(mask: np.ndarray, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """U-Net's border weight map (Ronneberger et al. 2015, eq. 2), without class balancing.

    ``w(x) = 1 + w0 · exp(-(d1(x) + d2(x))² / (2σ²))`` on background pixels, where d1 and d2
    are the distances to the nearest and second-nearest object; objects are the connected
    components of each non-background class. Object pixels weigh 1, ignore pixels 0. The
    gaps between touching objects get the largest weights, so the network learns to keep
    them apart.

    Args:
        mask: ``(H, W)`` class indices, 0 background, 255 ignore.
        w0: border weight (10 in the paper).
        sigma: width of the border term in pixels (≈5 in the paper).

    Returns:
        ``(H, W) float32`` weights.
    """
    weights = np.ones(mask.shape, np.float32)
    objects = []
    for c in np.unique(mask):
        if c in (0, IGNORE_INDEX):
            continue
        labelled, n = ndimage.label(mask == c)
        objects += [labelled == i for i in range(1, n + 1)]
    background = mask == 0
    if len(objects) >= 2 and background.any():
        # Distance of every pixel to each object; the two smallest per pixel.
        dist = np.stack([ndimage.distance_transform_edt(~obj) for obj in objects])
        d1, d2 = np.partition(dist, 1, axis=0)[:2]
        border = w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2))
        weights[background] += border[background].astype(np.float32)
    weights[mask == IGNORE_INDEX] = 0.0
    return weights
