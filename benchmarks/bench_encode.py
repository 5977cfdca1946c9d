"""Time and size of image.write's encoders at 12 MP (issue 14, point 5). Prints a table.

    python benchmarks/bench_encode.py [--runs 5] [--size 4000x3000] [PHOTO ...]

Encodes 8-bit RGB photos (by default the benchmark's 12 MP frame of bench_hzsr.py, made from
a real photograph; any PHOTO given is resized to ``--size``): PNG as ``image.write`` writes it
(``png_parts``: the up filter, ISA-L's deflate) against OpenCV at the settings it was chosen
with (``PNG_PARAMS``) and their alternatives, and JPEG at ``JPEG_PARAMS``. Medians of
``--runs`` encodes, interleaved so that load on a shared machine hits all alike; times
relative to the first row.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hzsr import make_pair  # noqa: E402 - the benchmark's frame, from its own module

from nodegraph.nodes.image_io import JPEG_PARAMS, PNG_PARAMS, png_parts  # noqa: E402

# name -> (extension, OpenCV parameters), or a function of BGR samples -> the file's bytes
CANDIDATES = {
    "PNG up filter, ISA-L deflate level 1 (image.write, shipped)":
        lambda bgr: png_parts(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)),
    "PNG level 1, up filter (OpenCV)": (".png", PNG_PARAMS),
    "PNG level 1, fast filter set (none/sub/up per row)":
        (".png", [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FAST_FILTERS]),
    "PNG level 1, Paeth filter": (".png", [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER,
                                           cv2.IMWRITE_PNG_FILTER_PAETH]),
    "PNG level 2, up filter": (".png", [cv2.IMWRITE_PNG_COMPRESSION, 2, cv2.IMWRITE_PNG_FILTER,
                                        cv2.IMWRITE_PNG_FILTER_UP]),
    "PNG OpenCV default (level 3, all filters)": (".png", []),
    "JPEG (image.write's JPEG_PARAMS)": (".jpg", JPEG_PARAMS),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="*", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", default="4000x3000")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        sources = args.photos or [make_pair(Path(tmp), width, height)[0]]
        for source in sources:
            image = cv2.resize(cv2.imread(str(source)), (width, height), interpolation=cv2.INTER_AREA)
            seconds: dict[str, list[float]] = {name: [] for name in CANDIDATES}
            sizes = {}
            for _ in range(args.runs):
                for name, encoder in CANDIDATES.items():
                    started = time.perf_counter()
                    if callable(encoder):
                        encoded = encoder(image)
                    else:
                        encoded = cv2.imencode(encoder[0], image, encoder[1])[1]
                    seconds[name].append(time.perf_counter() - started)
                    sizes[name] = sum(map(len, encoded)) if isinstance(encoded, list) else len(encoded)
            first = statistics.median(next(iter(seconds.values())))
            print(f"{source.name} at {width}x{height}, medians of {args.runs}:")
            print("| encoder | s | time ratio | MB |")
            print("|---|---|---|---|")
            for name, times in seconds.items():
                shipped = " (shipped)" if CANDIDATES[name] == (".jpg", JPEG_PARAMS) else ""
                median = statistics.median(times)
                print(f"| {name}{shipped} | {median:.3f} | {median / first:.2f} | {sizes[name] / 1e6:.2f} |")
            print()


if __name__ == "__main__":
    main()
