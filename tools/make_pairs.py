"""Small W/T pairs for batch tests and benchmarks, derived from the bundled sample pair.

    python tools/make_pairs.py DIR [--count 12] [--corrupt 2]

Writes ``DIR/pair01/ ... DIR/pairNN/``, each with ``wide.png``, ``tele.png`` and a
``case.json`` whose settings give the sample's zoom ratio 2 (PNG keeps no EXIF focal length).
Pair i is the sample (370x250, `nodes/hzsr/sample/README.md`) with both frames scaled by the
same gain and, for even i, both mirrored left-right (a mirrored pair is still a pair: T stays
W's central field of view), so the items differ in content. The last ``--corrupt`` pairs are
broken on purpose: their ``wide.png`` (odd ones) or ``tele.png`` (even ones) is cut off after
its first 100 bytes, which no decoder accepts.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

SAMPLE = Path(__file__).resolve().parent.parent / "nodes" / "hzsr" / "sample"
SAMPLE_RATIO = 2.0


def make_pairs(folder: str | Path, count: int, corrupt: int = 0) -> list[Path]:
    """Write ``count`` pair folders into ``folder`` (the last ``corrupt`` broken); return them."""
    wide = cv2.imread(str(SAMPLE / "wide.jpg"), cv2.IMREAD_COLOR)
    tele = cv2.imread(str(SAMPLE / "tele.jpg"), cv2.IMREAD_COLOR)
    made = []
    for index in range(1, count + 1):
        pair = Path(folder) / f"pair{index:02d}"
        pair.mkdir(parents=True, exist_ok=True)
        gain = 0.8 + 0.4 * (index - 1) / max(count - 1, 1)
        for name, frame in (("wide", wide), ("tele", tele)):
            varied = np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8)
            if index % 2 == 0:
                varied = varied[:, ::-1]
            ok, encoded = cv2.imencode(".png", np.ascontiguousarray(varied))
            assert ok
            (pair / f"{name}.png").write_bytes(encoded.tobytes())
        (pair / "case.json").write_text(json.dumps({"settings": {"ratio": SAMPLE_RATIO}}))
        if index > count - corrupt:
            broken = pair / ("wide.png" if index % 2 else "tele.png")
            broken.write_bytes(broken.read_bytes()[:100])
        made.append(pair)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--corrupt", type=int, default=2)
    args = parser.parse_args()
    for pair in make_pairs(args.folder, args.count, args.corrupt):
        print(pair)


if __name__ == "__main__":
    main()
