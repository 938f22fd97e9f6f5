"""The one image decoder (components/images.py) on the shared samples and generated files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from convflow.components.images import (
    ImageRejected,
    choose_channels,
    decode_file,
    parse_colour,
    to_channels,
)
from convflow.components.serving.predict import read_image
from PIL import Image

SAMPLES = Path("/work/shared/cases/images")
if not SAMPLES.is_dir():  # the samples also live beside the repository in a checkout
    SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "cases" / "images"


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return decode_file(SAMPLES / "trouser8.png")


def png_bytes(array: np.ndarray, color_type: int, depth: int) -> bytes:
    """A PNG written by hand, so 16-bit colour files exist (Pillow cannot write them)."""
    h, w = array.shape[:2]
    dtype = ">u2" if depth == 16 else "u1"
    raw = b"".join(b"\0" + array[i].astype(dtype).tobytes() for i in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(tag + data))
        return struct.pack(">I", len(data)) + tag + data + crc

    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def save(tmp_path: Path, name: str, image: Image.Image, **kw) -> Path:
    path = tmp_path / name
    image.save(path, **kw)
    return path


# -- the shared samples ----------------------------------------------------------------


def test_reference_sample_has_its_grey_levels(reference):
    assert reference.shape == (28, 28, 1) and reference.dtype == np.uint8
    assert len(np.unique(reference)) == 106 and reference.min() == 0 and reference.max() == 255


def test_16bit_sample_keeps_its_levels(reference):
    image = decode_file(SAMPLES / "trouser16.png")
    np.testing.assert_array_equal(image, reference)  # value * 257 >> 8 == value


def test_exif_sample_is_upright_like_the_plain_jpeg():
    plain = decode_file(SAMPLES / "trouser_plain.jpg").astype(int)
    rotated = decode_file(SAMPLES / "trouser_exif6.jpg").astype(int)
    assert rotated.shape == plain.shape
    assert np.abs(rotated - plain).mean() < 2  # JPEG error only
    assert np.abs(np.rot90(rotated, 1) - plain).mean() > 20  # not merely similar everywhere


@pytest.mark.parametrize("name,channels", [("trouser_alpha.png", 3), ("trouser_la.png", 1)])
def test_alpha_samples_are_composited_on_white(reference, name, channels):
    image = decode_file(SAMPLES / name)
    assert image.shape == (28, 28, channels)
    want = 255 - reference.astype(int)  # black ink, coverage = the picture
    np.testing.assert_array_equal(image.astype(int), np.repeat(want, channels, axis=-1))


def test_alpha_sample_on_another_background():
    image = decode_file(SAMPLES / "trouser_alpha.png", background=parse_colour("#ff0000"))
    corner = image[0, 0]  # fully transparent there: the background shows
    assert corner.tolist() == [255, 0, 0]


# -- generated files of the same kinds ---------------------------------------------------


def test_16bit_gray_of_another_size_is_scaled_not_clipped(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.integers(0, 65536, (23, 37), dtype=np.uint16)
    path = tmp_path / "g16.png"
    path.write_bytes(png_bytes(values, 0, 16))
    image = decode_file(path)
    np.testing.assert_array_equal(image[..., 0], (values >> 8).astype(np.uint8))
    assert len(np.unique(image)) > 200


def test_16bit_rgb_and_rgba_pngs_are_scaled(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    (tmp_path / "c16.png").write_bytes(png_bytes(rgb, 2, 16))
    np.testing.assert_array_equal(decode_file(tmp_path / "c16.png"), (rgb >> 8).astype(np.uint8))
    rgba = rgb.copy()
    rgba = np.concatenate([rgba, np.full((9, 11, 1), 65535, np.uint16)], axis=-1)
    (tmp_path / "c16a.png").write_bytes(png_bytes(rgba, 6, 16))
    np.testing.assert_array_equal(decode_file(tmp_path / "c16a.png"), (rgb >> 8).astype(np.uint8))


def test_16bit_tiff_is_scaled(tmp_path):
    values = (np.arange(30 * 20).reshape(30, 20) * 100).astype(np.uint16)
    path = save(tmp_path, "g16.tif", Image.fromarray(values))
    np.testing.assert_array_equal(decode_file(path)[..., 0], (values >> 8).astype(np.uint8))


def test_float_tiff_unit_range_and_other_ranges(tmp_path):
    unit = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    got = decode_file(save(tmp_path, "u.tif", Image.fromarray(unit)))[..., 0]
    np.testing.assert_array_equal(got, np.rint(unit * 255).astype(np.uint8))
    wide = np.linspace(-5, 100, 64, dtype=np.float32).reshape(8, 8)  # min-max
    got = decode_file(save(tmp_path, "w.tif", Image.fromarray(wide)))[..., 0]
    assert got.min() == 0 and got.max() == 255 and len(np.unique(got)) == 64
    bad = wide.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ImageRejected, match="non-finite"):
        decode_file(save(tmp_path, "n.tif", Image.fromarray(bad)))


def test_palette_with_transparent_colour_is_composited(tmp_path):
    image = Image.new("P", (10, 6), 0)
    image.putpalette([0, 0, 255, 200, 10, 10] + [0] * 762)
    image.paste(1, (0, 0, 5, 6))  # left half colour 1, right half colour 0 (transparent)
    path = save(tmp_path, "p.png", image, transparency=0)
    got = decode_file(path)
    assert got.shape == (6, 10, 3)
    assert got[0, 0].tolist() == [200, 10, 10] and got[0, 9].tolist() == [255, 255, 255]
    gif = save(tmp_path, "p.gif", image, transparency=0)
    assert decode_file(gif, background=(0, 0, 0))[0, 9].tolist() == [0, 0, 0]


def test_grayscale_with_transparent_level_and_gray_palette_stay_one_channel(tmp_path):
    gray = np.tile(np.arange(0, 250, 25, dtype=np.uint8), (4, 1))
    path = save(tmp_path, "l.png", Image.fromarray(gray), transparency=0)
    got = decode_file(path)
    assert got.shape == (4, 10, 1) and got[0, 0, 0] == 255 and got[0, 1, 0] == 25
    pal = Image.fromarray(gray).convert("P")
    pal.putpalette([v for i in range(256) for v in (i, i, i)])
    assert decode_file(save(tmp_path, "gp.png", pal)).shape == (4, 10, 1)


def _stored_for(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores so that a viewer applying ``orientation`` shows ``upright``."""
    return {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, 1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, -1),
    }[orientation](upright)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_shows_upright(tmp_path, orientation):
    upright = np.zeros((24, 40, 3), np.uint8)  # not square, and no symmetry
    upright[:8, :8] = (250, 30, 30)  # top-left red
    upright[16:, 20:] = (30, 30, 250)  # bottom-right blue
    upright[:8, 32:] = (30, 250, 30)  # top-right green
    stored = Image.fromarray(np.ascontiguousarray(_stored_for(upright, orientation)))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(tmp_path, f"o{orientation}.jpg", stored, exif=exif.tobytes(), quality=95)
    got = decode_file(path).astype(int)
    assert got.shape == upright.shape
    assert np.abs(got - upright).mean() < 4


def test_cmyk_jpeg_still_decodes(tmp_path):
    path = save(tmp_path, "c.jpg", Image.new("CMYK", (12, 9), (0, 255, 255, 0)), quality=95)
    got = decode_file(path)
    assert got.shape == (9, 12, 3) and got[4, 6, 0] > 200 and got[4, 6, 1:].max() < 60


def test_pixel_limit_is_checked_from_the_header_before_decoding(tmp_path):
    small = save(tmp_path, "s.png", Image.new("L", (20, 20)))
    with pytest.raises(ImageRejected, match=r"20×20 = 400 pixels, above the limit of 399"):
        decode_file(small, max_pixels=399)
    assert decode_file(small, max_pixels=400).shape == (20, 20, 1)
    # A 100000×100000 header with almost no data: refused from the header (Pillow's limit).
    (tmp_path / "bomb.png").write_bytes(png_bytes(np.zeros((1, 1), np.uint8), 0, 8))
    raw = bytearray((tmp_path / "bomb.png").read_bytes())
    raw[16:24] = struct.pack(">II", 100_000, 100_000)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    (tmp_path / "bomb.png").write_bytes(bytes(raw))
    with pytest.raises(ImageRejected, match=r"10,000,000,000 pixels, above the limit"):
        decode_file(tmp_path / "bomb.png")


def test_channel_rule_majority_and_fixed():
    assert choose_channels([1, 1, 1, 3], "majority") == 1  # one odd file does not decide
    assert choose_channels([1, 3, 3], "majority") == 3
    assert choose_channels([1, 3], "majority") == 3  # tie keeps colour
    assert choose_channels([3, 3], "grayscale") == 1 and choose_channels([1], "rgb") == 3
    rgb = np.array([[[255, 0, 0]]], np.uint8)
    assert to_channels(rgb, 1).tolist() == [[[76]]]  # ITU-R 601-2 luma of red


def test_serving_reads_files_through_the_same_decoder(tmp_path, reference):
    got = read_image(SAMPLES / "trouser_la.png", 1)
    np.testing.assert_array_equal(got, decode_file(SAMPLES / "trouser_la.png"))
    np.testing.assert_array_equal(read_image(SAMPLES / "trouser16.png", 1), reference)
    upright = read_image(SAMPLES / "trouser_exif6.jpg", 1).astype(int)
    assert np.abs(upright - reference.astype(int)).mean() < 3
    assert read_image(SAMPLES / "trouser_alpha.png", 3).shape == (28, 28, 3)
    with pytest.raises(ValueError, match="not a readable image"):
        read_image(tmp_path / "missing.png", 1)
    buf = io.BytesIO(b"not an image")
    (tmp_path / "junk.png").write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="not a readable image"):
        read_image(tmp_path / "junk.png", 1)
