"""Reading and writing image files (SPEC §4 steps 1 and 12).

``image.read`` outputs the pixels as decoded (a ``CompactImage``: uint8, or uint16 for
16-bit files, RGB), a quarter (half) of the float32 size; the executor converts them to
float32 RGB in [0, 1] for each node that reads an ``Image``, for the time of its call. Pixels
are decoded with OpenCV (it keeps 16-bit depth, which Pillow drops for RGB), metadata with
Pillow from the file's header only (EXIF orientation and the 35 mm-equivalent focal length).

Before anything is decoded, :func:`check_image_size` reads the size the file's header
declares (Pillow parses headers without decoding) and refuses files above a pixel budget or
with a side too short to use: a 389 kB PNG can declare 20000x20000 pixels, 1.2 GB once decoded
and 4.8 GB as float RGB, so the size a file claims is checked before memory is spent on it.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import stat
import struct
import sys
import tempfile
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from PIL import ExifTags
from PIL import Image as _PilImage

from nodegraph import CompactImage, Image, Out, OutPath, Param, Path, Scalar, node, wrote
from nodegraph.cores import thread_share
from nodegraph.errors import InputError
from nodegraph.files import write_atomic
from nodegraph.types import compact_to_float, float_to_samples

EXIF_ORIENTATION = 0x0112
EXIF_FOCAL_35MM = 0xA405  # FocalLengthIn35mmFilm, in the Exif sub-IFD
# OpenCV's PNG at level 1: at 12 MP it encodes ~5x faster than OpenCV's default 3, files ~10 %
# larger. The "up" filter alone on every row: 0.73-0.90x the time of libpng's fast filter set
# (none/sub/up chosen per row, which costs a pass per candidate) at -4 % to +1 % file size on
# 12 MP photos (benchmarks/bench_encode.py; issue 14); Paeth or level 2 cost more time than
# they save in bytes, level 0 writes 3x the bytes. image.write keeps the up filter but deflates
# with ISA-L (:func:`png_parts`); these settings remain the reference the benchmark compares.
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
PNG_DEFLATE_LEVEL = 1  # ISA-L's levels are 0-3; 1: at 12 MP 0.24x zlib level 1's time, 8 % fewer bytes
PNG_CHUNK_BYTES = 4 << 20  # filtered bytes (whole rows, at least one) per independently deflated part
PNG_ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KB window, fastest level; (0x78 * 256 + 1) % 31 == 0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"  # start of image, then the first marker
PNG_FILTER_UP = 2      # the filter-type byte that starts each row (PNG spec, section 9.2)
PNG_TRUECOLOUR = 2     # IHDR colour type: RGB
JPEG_PARAMS = [cv2.IMWRITE_JPEG_QUALITY, 95]
WRITE_EXTENSIONS = {".png": (8, 16), ".jpg": (8,), ".jpeg": (8,), ".tif": (8, 16),
                    ".tiff": (8, 16)}
DEFAULT_MAX_MEGAPIXELS = 200.0  # the largest phone sensors; 12 MP frames are the usual case
DEFAULT_MAX_ASPECT = 1000.0  # long side / short side
_pillow_limit = threading.Lock()
_stderr_redirect = threading.Lock()


@contextlib.contextmanager
def _header(path: str) -> Iterator[_PilImage.Image]:
    """The file opened by Pillow, which parses the header and decodes nothing yet.

    Pillow's own decompression-bomb check (a warning from 89 MP, an error from 179 MP) is off
    for this open: nothing is decoded here, and the limit that applies is the caller's
    (:func:`check_image_size`). The switch is process-wide, hence the lock.
    """
    with _pillow_limit:
        saved, _PilImage.MAX_IMAGE_PIXELS = _PilImage.MAX_IMAGE_PIXELS, None
        try:
            pil = _PilImage.open(path)
        finally:
            _PilImage.MAX_IMAGE_PIXELS = saved
    with pil:
        yield pil


@contextlib.contextmanager
def _decoder_messages() -> Iterator[list[str]]:
    """Collects what C decoders print on the process's standard error meanwhile (libpng writes
    "libpng error: ..." there itself) into the yielded list, so that a bad file gives one
    message, not the library's lines followed by ours. File descriptor 2 is process-wide, so
    one thread at a time redirects it (two interleaved redirections would leave it pointing
    at a deleted file)."""
    messages: list[str] = []
    sys.stderr.flush()
    with _stderr_redirect, tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield messages
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read(4096).decode("utf-8", errors="replace")
            messages.extend(line.strip() for line in text.splitlines() if line.strip())


def check_image_size(path: str | os.PathLike, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
                     min_side: int = 1, max_aspect: float = DEFAULT_MAX_ASPECT) -> tuple[int, int]:
    """(width, height) that the header of an image file declares, read without decoding.

    Every decoder calls this first. InputError, naming the file and its size, when the file is
    not a regular file, is not an image Pillow recognises, declares more than
    ``max_megapixels`` million pixels, has a side shorter than ``min_side`` pixels, or a long
    side more than ``max_aspect`` times its short side.
    """
    path = os.fspath(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise InputError(f"image file {path!r} is not a regular file")
    except OSError as error:
        raise InputError(f"cannot read image file {path!r}: {error.strerror or error}") from None
    try:
        with _header(path) as pil:
            width, height = pil.size
    except Exception:  # noqa: BLE001 - Pillow's format plugins raise many kinds on bad headers
        raise InputError(f"cannot decode image file {path!r}: not a readable PNG, JPEG or TIFF"
                         ) from None
    if width * height > max_megapixels * 1e6:
        raise InputError(f"image file {path!r} is {width}x{height} ({width * height / 1e6:.1f} MP), "
                         f"more than the {max_megapixels:g} MP accepted (parameter max_megapixels)")
    if min(width, height) < min_side:
        raise InputError(f"image file {path!r} is {width}x{height}: a side is shorter than the "
                         f"{min_side} px accepted (parameter min_side)")
    if max(width, height) > max_aspect * min(width, height):
        raise InputError(f"image file {path!r} is {width}x{height}: one side is more than "
                         f"{max_aspect:g} times the other, the most accepted (parameter max_aspect)")
    return width, height


def read_metadata(path: str | os.PathLike) -> tuple[int, float | None]:
    """(EXIF orientation 1..8, 35 mm-equivalent focal length in mm or None) of an image file.

    A focal length that is 0 ("unknown" in the EXIF standard), negative or not finite (a
    rational 0/0) is None.
    """
    with _header(os.fspath(path)) as pil:
        if pil.format == "PNG" and "exif" not in pil.info:
            return 1, None  # Pillow would decode every pixel to look for an eXIf chunk after them
        exif = pil.getexif()
    orientation = int(exif.get(EXIF_ORIENTATION, 1) or 1)
    # Writers put FocalLengthIn35mmFilm in the Exif sub-IFD; a few put it in IFD0.
    focal = exif.get_ifd(ExifTags.IFD.Exif).get(EXIF_FOCAL_35MM, exif.get(EXIF_FOCAL_35MM))
    focal_mm = float(focal) if focal else None
    if focal_mm is not None and not (math.isfinite(focal_mm) and focal_mm > 0):
        focal_mm = None
    return (orientation if 1 <= orientation <= 8 else 1), focal_mm


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels upright according to EXIF orientation 1..8 (as Pillow's exif_transpose)."""
    transforms = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(transforms[orientation](pixels))


def to_rgb(pixels: np.ndarray) -> np.ndarray:
    """Decoded OpenCV pixels (gray, gray+alpha, BGR or BGRA; 8/16-bit or float) -> RGB (H, W, 3),
    integer samples kept as they are, float ones clipped to [0, 1] as float32."""
    if np.issubdtype(pixels.dtype, np.floating):
        pixels = np.clip(pixels.astype(np.float32), 0.0, 1.0)
    elif pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"unsupported sample type {pixels.dtype}")
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.shape[2] <= 2:  # gray, or gray + alpha
        return np.repeat(pixels[:, :, :1], 3, axis=2)
    # BGR(A) -> RGB, alpha dropped: OpenCV's SIMD copy, ~8x NumPy's strided one at 12 MP
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB if pixels.shape[2] == 3 else cv2.COLOR_BGRA2RGB)


def read_samples(path: str | os.PathLike, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
                 min_side: int = 1, max_aspect: float = DEFAULT_MAX_ASPECT
                 ) -> tuple[np.ndarray, float | None]:
    """(RGB image as decoded (``to_rgb``), upright; 35 mm focal length or None); InputError
    names the file. Sizes are checked before decoding (:func:`check_image_size`)."""
    path = os.fspath(path)
    width, height = check_image_size(path, max_megapixels, min_side, max_aspect)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise InputError(f"cannot read image file {path!r}: {error.strerror or error}") from None
    # A JPEG holds no alpha and no 16-bit samples: libjpeg writes RGB itself, with no BGR
    # image to convert (at 12 MP one 36 MB array and 0.01-0.1 s fewer); EXIF orientation is
    # applied below for every format alike.
    jpeg = data[:3].tobytes() == JPEG_SIGNATURE
    flags = (cv2.IMREAD_COLOR_RGB | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_IGNORE_ORIENTATION if jpeg
             else cv2.IMREAD_UNCHANGED)
    with _decoder_messages() as messages:
        pixels = cv2.imdecode(data, flags) if data.size else None
    said = f" ({messages[0][:200]})" if messages else ""
    if pixels is None or pixels.size == 0:
        raise InputError(f"cannot decode image file {path!r}: not a readable PNG, JPEG or TIFF{said}")
    if messages:
        warnings.warn(f"image file {path!r} decoded with complaints{said}", stacklevel=2)
    if pixels.shape[:2] != (height, width):  # OpenCV read the file differently from its header
        raise InputError(f"cannot decode image file {path!r}: its header says {width}x{height}, "
                         f"its pixels are {pixels.shape[1]}x{pixels.shape[0]}")
    try:
        orientation, focal = read_metadata(path)
    except Exception:  # noqa: BLE001 - OpenCV decoded it; metadata Pillow cannot parse is absent
        orientation, focal = 1, None
    upright = apply_orientation(pixels, orientation)
    return (upright if jpeg else to_rgb(upright)), focal


def read_image(path: str | os.PathLike, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
               min_side: int = 1, max_aspect: float = DEFAULT_MAX_ASPECT
               ) -> tuple[np.ndarray, float | None]:
    """(float32 RGB image in [0, 1], upright, as an Image port receives it; 35 mm focal length
    or None): :func:`read_samples` converted for code that works on floats."""
    samples, focal = read_samples(path, max_megapixels, min_side, max_aspect)
    return compact_to_float(samples), focal


def to_samples(image: np.ndarray, bit_depth: int, bgr: bool = True) -> np.ndarray:
    """Float RGB in [0, 1] -> samples rint(clip(x, 0, 1) * full scale), uint8 or uint16, in
    OpenCV's BGR order (``bgr``) or as RGB: :func:`nodegraph.types.float_to_samples` (the
    product in double precision, as ``quantize_mask``'s), then the channels swapped by OpenCV."""
    samples = float_to_samples(image, bit_depth)
    return cv2.cvtColor(samples, cv2.COLOR_RGB2BGR) if bgr and samples.ndim == 3 else samples


def png_parts(samples: np.ndarray) -> list[bytes]:
    """The PNG file of RGB samples (H, W, 3), uint8 or uint16, as the list of its parts in
    order (written one after the other, or joined): every row "up"-filtered (the difference
    to the row above, bytewise, as OpenCV's PNG_PARAMS choose), one IDAT chunk deflated by
    ISA-L (``isal``) at PNG_DEFLATE_LEVEL, in parts of rows on the cores at once
    (:func:`_zlib_parts`; 12 MP on 2 cores: 0.12 vs 0.14 s, 0.01 % more bytes).

    OpenCV, libpng and imagecodecs all deflate with zlib, which is most of their time: at
    12 MP 0.42-0.45 s at level 1, where ISA-L takes 0.10 s and writes 8 % fewer bytes
    (benchmarks/bench_encode.py). No library offers a PNG writer with a faster deflate, so
    the container (signature, IHDR, IDAT, IEND, each chunk's CRC) is written here. Each part
    of rows is filtered by the thread that deflates it, and the deflated parts are not joined:
    at 12 MP no 36 MB filtered copy and no three 10 MB joins.
    """
    height = samples.shape[0]
    if samples.dtype == np.uint16:
        samples = samples.astype(">u2")  # PNG stores 16-bit samples big-endian
    rows = samples.reshape(height, -1).view(np.uint8)
    step = max(1, PNG_CHUNK_BYTES // (1 + rows.shape[1]))

    def filtered(top: int) -> np.ndarray:
        """Rows [top, top + step) up-filtered, each led by its filter-type byte, flattened."""
        bottom = min(height, top + step)
        out = np.empty((bottom - top, 1 + rows.shape[1]), np.uint8)
        out[:, 0] = PNG_FILTER_UP
        if top == 0:
            out[0, 1:] = rows[0]  # the row above the first counts as zeros
        else:
            np.subtract(rows[top], rows[top - 1], out=out[0, 1:])
        np.subtract(rows[top + 1:bottom], rows[top:bottom - 1], out=out[1:, 1:])  # modulo 256
        return out.reshape(-1)

    header = struct.pack(">IIBBBBB", samples.shape[1], height, 8 * samples.itemsize, PNG_TRUECOLOUR,
                         0, 0, 0)
    idat = _zlib_parts([functools.partial(filtered, top) for top in range(0, height, step)])
    return [PNG_SIGNATURE, *_png_chunk(b"IHDR", [header]), *_png_chunk(b"IDAT", idat),
            *_png_chunk(b"IEND", [])]


def png_bytes(samples: np.ndarray) -> bytes:
    """The PNG file of :func:`png_parts` as one bytes object."""
    return b"".join(png_parts(samples))


def _zlib_parts(parts: list[Callable[[], np.ndarray]]) -> list[bytes]:
    """The zlib stream, at PNG_DEFLATE_LEVEL, of the data the calls in ``parts`` make (uint8,
    1-D, in order), as a list of bytes; the parts are made and deflated on the process's cores
    at once.

    A zlib stream may hold deflate blocks made independently: each part but the last ends
    with a full flush (byte-aligned, no reference back into the part before it), and the
    adler-32 of the whole closes the stream (chained over the parts in order, each dropped
    once counted). Parts of PNG_CHUNK_BYTES cost ~0.01 % in size; ISA-L releases the GIL
    while it deflates (36 MB on 2 cores: 0.68x the time of one call).
    """
    from isal import isal_zlib

    def deflate(index: int) -> tuple[bytes, np.ndarray]:
        data = parts[index]()
        part = isal_zlib.compressobj(PNG_DEFLATE_LEVEL, isal_zlib.DEFLATED, -15)  # raw deflate
        last = index == len(parts) - 1
        return part.compress(data) + part.flush(isal_zlib.Z_FINISH if last else isal_zlib.Z_FULL_FLUSH), data

    stream, adler = [PNG_ZLIB_HEADER], 1
    workers = min(len(parts), thread_share())
    with ThreadPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
        for deflated, data in (pool.map if pool else map)(deflate, range(len(parts))):
            stream.append(deflated)
            adler = isal_zlib.adler32(data, adler)
    return [*stream, struct.pack(">I", adler)]


def _png_chunk(kind: bytes, parts: list[bytes]) -> list[bytes]:
    """A PNG chunk holding the bytes of ``parts``: length, type, the parts, CRC-32 of type and data."""
    crc = zlib.crc32(kind)
    for part in parts:
        crc = zlib.crc32(part, crc)
    return [struct.pack(">I", sum(map(len, parts))) + kind, *parts, struct.pack(">I", crc)]


def encode_image(image: np.ndarray, extension: str, bit_depth: int) -> list[bytes]:
    """Encode a float RGB image in [0, 1] to a PNG/JPEG/TIFF file: its bytes, in parts."""
    depths = WRITE_EXTENSIONS.get(extension.lower())
    if depths is None:
        raise InputError(f"cannot write {extension!r} files; use one of "
                         f"{', '.join(sorted(WRITE_EXTENSIONS))}")
    if bit_depth not in depths:
        raise InputError(f"{extension} files cannot hold {bit_depth}-bit samples")
    if extension.lower() == ".png":
        return png_parts(to_samples(image, bit_depth, bgr=False))
    samples = to_samples(image, bit_depth)
    params = {".jpg": JPEG_PARAMS, ".jpeg": JPEG_PARAMS}.get(extension.lower(), [])
    ok, buffer = cv2.imencode(extension, samples, params)
    if not ok:
        raise InputError(f"OpenCV could not encode a {extension} image")
    return [buffer.data]


@node("image.read", version=2)
def read(path: Path, *,
         max_megapixels: float = Param(DEFAULT_MAX_MEGAPIXELS, range=(0.001, 10000.0), unit="MP",
                                       doc="refuse files whose header declares more pixels"),
         min_side: int = Param(1, range=(1, 100000), unit="px",
                               doc="refuse images with a shorter side"),
         max_aspect: float = Param(DEFAULT_MAX_ASPECT, range=(1.0, 100000.0),
                                   doc="refuse images whose long side is more times the short one")
         ) -> Out(image=CompactImage, focal_35mm=Scalar):
    """Read an 8/16-bit PNG, JPEG or TIFF file as RGB samples: uint8, or uint16 for 16-bit files.

    EXIF orientation is applied; gray becomes RGB, alpha is dropped. Linked to an ``Image``
    port, the samples arrive as float32 in [0, 1] (scaled by 1/255 or 1/65535).
    ``focal_35mm`` is the EXIF FocalLengthIn35mmFilm (0xA405) in mm, or None when the file
    does not record it (or records an implausible value). The size in the file's header is
    checked before decoding: more than ``max_megapixels``, a side below ``min_side`` or an
    aspect beyond ``max_aspect`` raises InputError, as does a missing or corrupt file.
    """
    image, focal = read_samples(path, max_megapixels, min_side, max_aspect)
    return {"image": image, "focal_35mm": focal}


@node("image.write", version=1, side_effect=True)
def write(image: Image, path: OutPath.with_suffixes(*WRITE_EXTENSIONS), *,
          bit_depth: int = Param(8, choices=(8, 16), unit="bit",
                                 doc="bits per sample; 16 only for PNG and TIFF")
          ) -> Out(path=OutPath):
    """Write an image atomically as PNG, JPEG or TIFF (chosen by the file extension).

    Creates the parent directory. The file appears complete or not at all: a failed write
    leaves any existing file untouched.
    """
    write_atomic(path, encode_image(image, os.path.splitext(os.fspath(path))[1], bit_depth))
    wrote(path, f"{image.shape[1]}x{image.shape[0]}")
    return path
