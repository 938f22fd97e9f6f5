"""The one image-file decoder: a file as the uint8 H×W×C picture a viewer shows.

Ingest (image folders) and serving (``convflow predict``) both read files through
:func:`decode_file`, so a picture is the same array in training and in production
(DESIGN.md, "Decoding"). The rules, in order:

1. **Size limit** from the header, before any pixel is decoded: above ``max_pixels``
   (default Pillow's ``Image.MAX_IMAGE_PIXELS``) the file is refused, naming its size.
2. **EXIF orientation** applied (``PIL.ImageOps.exif_transpose``), as a viewer shows it.
3. **Bit depth scaled, never clipped**: 16-bit integer samples ``>> 8`` (65535 -> 255, so
   every grey level keeps its place); 32-bit integer samples min-max scaled; float samples
   already in [0, 1] times 255, any other float range min-max scaled to [0, 255] (a constant
   image becomes 0). Non-finite floats are refused. Pillow reads 16-bit RGB(A) PNGs as 8-bit
   by taking the high byte, which is the same ``>> 8``.
4. **Transparency composited** over ``background`` (an RGB triple; white by default):
   RGBA, LA, PA and palette or grayscale images with a transparent colour. Grayscale with
   alpha composites over the background's luma (ITU-R 601-2, as Pillow's ``convert("L")``).
5. **Channels**: grayscale kinds (1, L, LA, I;16, I, F) give C=1; every other mode (RGB,
   RGBA, P, CMYK, YCbCr, LAB, HSV) gives C=3 through Pillow's conversion. A dataset then
   picks one count for all its images with :func:`choose_channels`.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

WHITE = (255, 255, 255)
EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp"}
CHANNEL_RULES = ("majority", "grayscale", "rgb")
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601-2, Pillow's convert("L")


class ImageRejected(ValueError):
    """A file that is not a usable picture; the message is the reason, without the path."""


def parse_colour(text: str) -> tuple[int, int, int]:
    """A colour name or ``#rrggbb`` as an RGB triple (Pillow's ImageColor names).

    Raises:
        ValueError: naming the text and the accepted forms.
    """
    from PIL import ImageColor

    try:
        rgb = ImageColor.getrgb(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a colour; use a name such as 'white' or '#rrggbb'"
        ) from None
    return tuple(int(c) for c in rgb[:3])


def _luma(rgb: Sequence[int]) -> float:
    return float(np.asarray(rgb, np.float32) @ _LUMA)


def _scale_to_uint8(array: np.ndarray, mode: str) -> np.ndarray:
    """Integer or float samples of any depth -> uint8, keeping the full range (rule 3)."""
    if array.dtype == np.uint8:
        return array
    if mode.startswith("I;16") or array.dtype == np.uint16:
        return (array.astype(np.uint32) >> 8).astype(np.uint8)
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise ImageRejected("non-finite pixel values (NaN or inf)")
    if array.dtype.kind == "f" and values.min() >= 0.0 and values.max() <= 1.0:
        return np.rint(values * 255.0).astype(np.uint8)
    lo, hi = values.min(), values.max()
    if hi == lo:
        return np.zeros(array.shape, np.uint8)
    return np.rint((values - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _composite(rgba: np.ndarray, background: Sequence[float]) -> np.ndarray:
    """H×W×(C+1) uint8 with alpha last -> H×W×C uint8 over ``background`` (C values)."""
    alpha = rgba[..., -1:].astype(np.float32) / 255.0
    colour = rgba[..., :-1].astype(np.float32)
    bg = np.asarray(background, np.float32)
    return np.rint(colour * alpha + bg * (1.0 - alpha)).astype(np.uint8)


def _has_transparency(image) -> bool:
    return image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info


def _to_array(image, background: Sequence[int]) -> np.ndarray:
    """A loaded, upright PIL image -> H×W×C uint8 by rules 3-5."""
    mode = image.mode
    gray = mode in _GRAY_MODES or (mode == "P" and _gray_palette(image))
    if _has_transparency(image):
        rgba = np.asarray(image.convert("RGBA"))
        if gray:
            return _composite(rgba[..., [0, 3]], [_luma(background)])[..., :1]
        return _composite(rgba, background)
    if mode in ("1", "L"):
        return np.asarray(image.convert("L"))[..., None]
    if mode in _GRAY_MODES:
        return _scale_to_uint8(np.asarray(image), mode)[..., None]
    if gray:
        return np.asarray(image.convert("L"))[..., None]
    return np.asarray(image.convert("RGB"))


def _gray_palette(image) -> bool:
    palette = image.getpalette() or []
    rgb = np.asarray(palette[: len(palette) // 3 * 3]).reshape(-1, 3)
    return bool(len(rgb)) and bool((rgb == rgb[:, :1]).all())


def decode_file(
    path: str | os.PathLike,
    background: Sequence[int] = WHITE,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Decodes one image file by the module's rules.

    Args:
        path: the file (any format Pillow reads).
        background: RGB triple that transparent pixels are composited over.
        max_pixels: refuse images with more pixels (None: Pillow's MAX_IMAGE_PIXELS).

    Returns:
        uint8 array of shape (H, W, C), C = 1 (grayscale kinds) or 3 (colour kinds).

    Raises:
        ImageRejected: empty, undecodable, truncated, too large or pixel-less file.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if path.stat().st_size == 0:
        raise ImageRejected("empty file")
    limit = max_pixels or Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            # The limit is checked below from the header; Pillow's warning would be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if limit and width * height > limit:
                    raise ImageRejected(_too_large(width, height, limit))
                image.load()  # a full decode, so truncation shows here
                upright = ImageOps.exif_transpose(image)
                array = _to_array(upright, background)
    except Image.DecompressionBombError as e:
        # Raised by Image.open itself (above twice its own limit): the size is in the text.
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(pixels.group(1)):,} pixels" if pixels else "too many pixels"
        raise ImageRejected(f"image has {size}, above the limit of {limit:,}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        if isinstance(e, ImageRejected):
            raise
        raise ImageRejected(f"undecodable image ({e})") from None
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageRejected(f"image has no pixels (shape {array.shape})")
    return array


def _too_large(width: int, height: int, limit: int) -> str:
    return (
        f"image is {width}×{height} = {width * height:,} pixels, above the limit of "
        f"{limit:,} (ingest.max_image_pixels)"
    )


def choose_channels(counts: Sequence[int], rule: str) -> int:
    """One channel count for a dataset whose files decode to ``counts`` channels each.

    Rules: "grayscale" -> 1, "rgb" -> 3, "majority" -> the count most files have, ties to 3
    (colour kept rather than thrown away). One odd file never decides for the rest.

    Raises:
        ValueError: an unknown rule.
    """
    if rule == "grayscale":
        return 1
    if rule == "rgb":
        return 3
    if rule != "majority":
        raise ValueError(f"unknown channel rule {rule!r}; expected one of {CHANNEL_RULES}")
    ones = sum(1 for c in counts if c == 1)
    return 1 if ones > len(counts) - ones else 3


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """H×W×C uint8 -> H×W×``channels`` (gray repeated, or colour to ITU-R 601-2 luma)."""
    if image.shape[-1] == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=-1)
    luma = image[..., :3].astype(np.float32) @ _LUMA
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
