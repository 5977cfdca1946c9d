"""image.read / image.write: formats, EXIF, errors naming the file, atomic writes."""
from __future__ import annotations

import io
import os
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image as PilImage
from PIL import ImageOps

from nodegraph.errors import InputError
from nodegraph.files import write_atomic
from nodegraph.nodes.image_io import (
    EXIF_FOCAL_35MM,
    apply_orientation,
    read,
    to_rgb,
    to_samples,
    write,
)
from nodegraph.types import CompactImage, Image, compact_to_float


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("channels", [3, 4])
def test_to_rgb_reorders_bgr_and_drops_alpha(dtype, channels):
    """OpenCV's channel reorder against NumPy's reversed view, on random samples."""
    rng = np.random.default_rng(channels)
    if dtype == np.float32:
        pixels = rng.uniform(-0.5, 1.5, (23, 41, channels)).astype(np.float32)
        expected = np.clip(pixels[:, :, 2::-1], 0.0, 1.0)
    else:
        pixels = rng.integers(0, np.iinfo(dtype).max + 1, (23, 41, channels), dtype=dtype)
        expected = pixels[:, :, 2::-1]
    rgb = to_rgb(pixels)
    assert rgb.dtype == (np.float32 if dtype == np.float32 else dtype) and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, expected)


def read_float(path: str) -> np.ndarray:
    """What a node reading an Image port gets from image.read (the executor's conversion)."""
    image = read(path)["image"]
    assert CompactImage.problem_with(image) is None
    return CompactImage.convert(image, Image)


def _gradient_rgb(h=40, w=60):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 4, yy * 6, (xx + yy) * 2], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_apply_orientation_matches_pillow(orientation):
    pixels = _gradient_rgb(5, 7)
    exif = PilImage.Exif()
    exif[0x0112] = orientation
    pil = PilImage.fromarray(pixels)
    pil.info["exif"] = exif.tobytes()
    pil.getexif()[0x0112] = orientation
    expected = np.asarray(ImageOps.exif_transpose(pil))
    np.testing.assert_array_equal(apply_orientation(pixels, orientation), expected)


def test_jpeg_orientation_6_is_rotated_clockwise(tmp_path):
    # A wide image with a red left half: stored sideways with orientation 6 (rotate 90 CW to view).
    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :40] = (255, 0, 0)
    pixels[:, 40:] = (0, 0, 255)
    exif = PilImage.Exif()
    exif[0x0112] = 6
    file = tmp_path / "rot.jpg"
    PilImage.fromarray(pixels).save(file, quality=95, exif=exif)
    out = read_float(str(file))
    assert out.shape == (80, 40, 3) and out.dtype == np.float32
    # Rotating clockwise puts the stored left (red) half on top.
    assert out[:30, :, 0].mean() > 0.9 and out[:30, :, 2].mean() < 0.1
    assert out[-30:, :, 2].mean() > 0.9 and out[-30:, :, 0].mean() < 0.1


@pytest.mark.parametrize("kind", ["colour", "gray", "turned"])
def test_jpeg_decoded_to_rgb_equals_the_bgr_decode_reordered(kind, tmp_path):
    """JPEGs are decoded straight to RGB: the same samples as OpenCV's BGR decode with its
    channels reversed (gray repeated into three), EXIF orientation applied once, not twice
    (OpenCV would apply it itself unless told not to)."""
    rng = np.random.default_rng(3)
    pixels = cv2.GaussianBlur(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8), (5, 5), 1.5)
    file = tmp_path / f"{kind}.jpg"
    exif = PilImage.Exif()
    exif[0x0112] = 6 if kind == "turned" else 1
    PilImage.fromarray(pixels[..., 0] if kind == "gray" else pixels).save(file, quality=90, exif=exif)
    stored = cv2.imread(str(file), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    expected = np.repeat(stored[..., None], 3, axis=2) if stored.ndim == 2 else stored[..., ::-1]
    got = read(str(file))["image"]
    assert got.dtype == np.uint8 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, apply_orientation(expected, 6) if kind == "turned" else expected)


def test_focal_length_35mm_read_from_exif(tmp_path):
    exif = PilImage.Exif()
    exif.get_ifd(0x8769)[EXIF_FOCAL_35MM] = 52
    file = tmp_path / "tele.jpg"
    PilImage.fromarray(_gradient_rgb()).save(file, exif=exif)
    assert read(str(file))["focal_35mm"] == 52.0
    plain = tmp_path / "plain.png"
    PilImage.fromarray(_gradient_rgb()).save(plain)
    assert read(str(plain))["focal_35mm"] is None


def test_png_8bit_rgb_exact(tmp_path):
    pixels = _gradient_rgb()
    file = tmp_path / "a.png"
    PilImage.fromarray(pixels).save(file)
    stored = read(str(file))["image"]
    assert stored.dtype == np.uint8  # held compact; a quarter of float32
    np.testing.assert_array_equal(stored, pixels)
    np.testing.assert_allclose(read_float(str(file)), pixels / 255.0, atol=1e-7)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_scaled_by_1_over_65535(tmp_path, ext):
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    file = tmp_path / f"deep{ext}"
    assert cv2.imwrite(str(file), bgr)
    assert read(str(file))["image"].dtype == np.uint16
    np.testing.assert_allclose(read_float(str(file)), bgr[:, :, ::-1] / 65535.0, atol=1e-7)


def test_gray_8_and_16_bit_become_rgb(tmp_path):
    gray8 = (np.arange(200).reshape(10, 20) % 256).astype(np.uint8)
    PilImage.fromarray(gray8).save(tmp_path / "g8.png")
    out = read_float(str(tmp_path / "g8.png"))
    assert out.shape == (10, 20, 3)
    for c in range(3):
        np.testing.assert_allclose(out[:, :, c], gray8 / 255.0, atol=1e-7)
    gray16 = (np.arange(200).reshape(10, 20) * 300).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), gray16)
    out16 = read_float(str(tmp_path / "g16.png"))
    np.testing.assert_allclose(out16[:, :, 1], gray16 / 65535.0, atol=1e-7)


def test_rgba_drops_alpha(tmp_path):
    rgba = np.zeros((8, 9, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 200, 100, 50, 7
    PilImage.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_float(str(tmp_path / "a.png"))
    assert out.shape == (8, 9, 3)
    np.testing.assert_allclose(out[0, 0], np.array([200, 100, 50]) / 255.0, atol=1e-7)


def test_missing_file_raises_input_error_naming_it(tmp_path):
    missing = tmp_path / "nowhere.png"
    with pytest.raises(InputError, match="nowhere.png"):
        read(str(missing))


@pytest.mark.parametrize("payload", [b"", b"this is not an image at all" * 10,
                                     b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20])
def test_corrupt_file_raises_input_error_naming_it(tmp_path, payload):
    file = tmp_path / "broken.png"
    file.write_bytes(payload)
    with pytest.raises(InputError, match="broken.png"):
        read(str(file))


@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff"])
def test_write_read_roundtrip_8_and_16_bit(tmp_path, ext):
    rng = np.random.default_rng(1)
    image = rng.random((12, 17, 3)).astype(np.float32)
    p8 = str(tmp_path / f"sub/dir/out8{ext}")  # parent directories are created
    assert write(image, p8, bit_depth=8) == p8
    np.testing.assert_allclose(read_float(p8), image, atol=0.5 / 255 + 1e-6)
    p16 = str(tmp_path / f"out16{ext}")
    write(image, p16, bit_depth=16)
    np.testing.assert_allclose(read_float(p16), image, atol=0.5 / 65535 + 1e-6)
    assert cv2.imread(p16, cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_write_jpeg_and_reject_16_bit_jpeg(tmp_path):
    image = np.full((16, 16, 3), 0.5, np.float32)
    write(image, str(tmp_path / "a.jpg"), bit_depth=8)
    assert abs(read_float(str(tmp_path / "a.jpg")).mean() - 0.5) < 0.01
    with pytest.raises(InputError, match="16-bit"):
        write(image, str(tmp_path / "b.jpg"), bit_depth=16)
    with pytest.raises(InputError, match=".bmp"):
        write(image, str(tmp_path / "c.bmp"), bit_depth=8)


def test_failed_write_leaves_existing_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "keep.png"
    target.write_bytes(b"original content")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write(np.zeros((4, 4, 3), np.float32), str(target), bit_depth=8)
    assert target.read_bytes() == b"original content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]


def test_failed_encode_leaves_existing_file(tmp_path):
    target = tmp_path / "keep.jpg"
    target.write_bytes(b"original")
    with pytest.raises(InputError):
        write(np.zeros((4, 4, 3), np.float32), str(target), bit_depth=16)
    assert target.read_bytes() == b"original"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.jpg"]


def test_write_atomic_replaces_whole_file(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old" * 100)
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"


def test_write_atomic_writes_parts_in_order(tmp_path):
    """An encoder's parts (bytes, memoryviews, NumPy buffers) land one after the other."""
    target = tmp_path / "f.bin"
    write_atomic(target, [b"ab", memoryview(b"cd"), np.frombuffer(b"ef", np.uint8).data, b""])
    assert target.read_bytes() == b"abcdef"


def test_written_file_has_ordinary_permissions(tmp_path):
    import stat

    umask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "out.bin", b"data")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "out.bin").stat().st_mode) == 0o644


# ---------------------------------------------------------------- hostile files (issue 18)

def _png_claiming(width, height):
    """A PNG whose header declares width x height and that holds no pixel data."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize("size, params, expected", [
    ((20000, 20000), {}, "is 20000x20000 (400.0 MP), more than the 200 MP accepted"),
    ((3000, 2000), {"max_megapixels": 5.0}, "(6.0 MP), more than the 5 MP accepted"),
    ((1, 1), {"min_side": 32}, "is 1x1: a side is shorter than the 32 px accepted"),
    ((4000, 8), {"min_side": 32}, "is 4000x8"),
    ((4000, 100), {"max_aspect": 8.0}, "more than 8 times the other"),
])
def test_sizes_are_refused_from_the_header_before_decoding(tmp_path, monkeypatch, size, params,
                                                           expected):
    path = tmp_path / "claims.png"
    path.write_bytes(_png_claiming(*size))

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    monkeypatch.setattr(PilImage.Image, "load", no_decoding)
    with pytest.raises(InputError, match=str(path)) as caught:
        read(str(path), **params)
    assert expected in str(caught.value)


def test_non_regular_files_are_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    for name in ("fifo.png", "zero.png"):
        with pytest.raises(InputError, match="not a regular file"):
            read(str(tmp_path / name))


def test_what_libpng_prints_becomes_part_of_the_one_message(tmp_path, capfd):
    ok, png = cv2.imencode(".png", _gradient_rgb(200, 300))
    path = tmp_path / "cut.png"
    path.write_bytes(png.tobytes()[: len(png) // 2])
    with pytest.raises(InputError, match=r"cannot decode .*\(libpng error: .+\)"):
        read(str(path))
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("focal", [0, -26, (0, 0)])
def test_meaningless_exif_focal_lengths_are_absent(tmp_path, focal):
    from PIL.TiffImagePlugin import IFDRational
    exif = PilImage.Exif()
    exif.get_ifd(0x8769)[EXIF_FOCAL_35MM] = IFDRational(*focal) if isinstance(focal, tuple) else focal
    file = tmp_path / "odd.jpg"
    PilImage.fromarray(_gradient_rgb()).save(file, exif=exif)
    assert read(str(file))["focal_35mm"] is None


def test_stale_temporaries_of_killed_writers_are_removed_by_the_next_write(tmp_path):
    import subprocess
    import sys
    import time
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".out.png.{gone}.abcd1234.tmp"  # its writer was SIGKILLed 2 minutes ago
    fresh = tmp_path / f".out.png.{gone}.efgh1234.tmp"  # maybe a writer this process cannot see
    live = tmp_path / f".out.png.{os.getpid()}.wxyz5678.tmp"  # a writer still at work
    old = tmp_path / f".other.png.{os.getpid()}.old12345.tmp"  # too old to be at work
    unrelated = tmp_path / ".notes.tmp"
    for path in (stale, fresh, live, old, unrelated):
        path.write_bytes(b"partial")
    two_minutes_ago = time.time() - 120
    os.utime(stale, (two_minutes_ago, two_minutes_ago))
    os.utime(old, (1, 1))  # 1970
    write_atomic(tmp_path / "next.png", b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [fresh.name, live.name, unrelated.name, "next.png"])


@pytest.mark.parametrize("banded", [False, True])
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_samples_match_the_plain_rounding_rule(bit_depth, banded, monkeypatch):
    """Whole, or in bands of rows on three threads (nodegraph.cores.in_row_bands)."""
    if banded:
        from nodegraph import cores
        monkeypatch.setattr(cores, "BANDED_PIXELS", 1)
        monkeypatch.setattr(cores, "thread_share", lambda: 3)
    rng = np.random.default_rng(bit_depth)
    image = rng.uniform(-0.2, 1.2, (33, 47, 3)).astype(np.float32)
    image[0, :3] = [0.5 / 255, 1.5 / 255, 254.5 / 255]  # halfway cases
    peak, dtype = (255.0, np.uint8) if bit_depth == 8 else (65535.0, np.uint16)
    # the product in double precision (OpenCV's), so a float32 value just above a half rounds up
    expected = np.rint(np.clip(image[:, :, ::-1], 0.0, 1.0).astype(np.float64) * peak).astype(dtype)
    out = to_samples(image, bit_depth)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, expected)


def test_compact_images_convert_only_into_image_ports():
    from nodegraph.types import Gray, Mask
    pixels = np.full((2, 3, 3), 51, np.uint8)
    assert CompactImage.can_feed(Image) and not CompactImage.can_feed(Mask)
    assert not CompactImage.can_feed(Gray)
    # a port that reads compact images (hzsr.uncrop's W) takes a float32 image as it is
    image = np.full((2, 3, 3), 0.2, np.float32)
    assert Image.can_feed(CompactImage) and Image.convert(image, CompactImage) is image
    assert CompactImage.problem_with(image) is None
    np.testing.assert_allclose(CompactImage.convert(pixels, Image), 0.2, atol=1e-7)
    assert compact_to_float(pixels).dtype == np.float32
    assert CompactImage.convert(None, Image) is None
    assert Mask.convert(pixels, Gray) is pixels  # a plain (non-converting) link passes as is
    assert "dtype" in CompactImage.problem_with(pixels.astype(np.int32))


@pytest.mark.parametrize("parts", ["one", "several"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (33, 47)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_bytes_decode_to_the_samples_in_libpng_and_pillow(shape, dtype, parts, monkeypatch):
    """png_bytes (image.write's PNG: up filter, ISA-L deflate) read back by OpenCV (libpng) and
    Pillow: the same RGB samples, 8 and 16 bit, rows and columns of one included; deflated
    whole, or in parts of 50 bytes on three threads (a zlib stream of independent blocks)."""
    from nodegraph.nodes import image_io
    from nodegraph.nodes.image_io import png_bytes

    if parts == "several":
        monkeypatch.setattr(image_io, "PNG_CHUNK_BYTES", 50)
        monkeypatch.setattr(image_io, "thread_share", lambda: 3)

    rng = np.random.default_rng(shape[1])
    samples = rng.integers(0, np.iinfo(dtype).max, (*shape, 3), dtype=dtype, endpoint=True)
    encoded = png_bytes(samples)
    decoded = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == dtype
    np.testing.assert_array_equal(decoded.reshape(*shape, 3)[..., ::-1], samples)
    with PilImage.open(io.BytesIO(encoded)) as image:
        image.verify()  # chunk CRCs and structure
    if dtype == np.uint8:
        with PilImage.open(io.BytesIO(encoded)) as image:
            np.testing.assert_array_equal(np.asarray(image.convert("RGB")), samples)


@pytest.mark.parametrize("workers", [1, 4])
def test_zlib_stream_in_parts_equals_the_data_whole(workers, monkeypatch):
    """The parts' stream inflates (zlib, checking its adler-32) to the data, at any part size,
    including parts that do not divide it, deflated on one thread or several."""
    from nodegraph.nodes import image_io

    data = np.random.default_rng(0).integers(0, 8, 10_007, dtype=np.uint8)  # compressible
    monkeypatch.setattr(image_io, "thread_share", lambda: workers)
    for part_bytes in (1, 999, 5_000, 10_007, 1 << 20):
        parts = [data[start:start + part_bytes] for start in range(0, len(data), part_bytes)]
        stream = image_io._zlib_parts([lambda part=part: part for part in parts])
        assert zlib.decompress(b"".join(stream)) == data.tobytes()
