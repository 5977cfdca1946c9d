"""Draw docs/hzsr_geometry.png: what ``ratio``, ``zoom`` and ``uncrop.pixel_size`` mean.

    python tools/draw_geometry.py

W's frame, T's footprint in it (field of view 1/ratio of W's width, possibly turned and of
another aspect), the output view (1/zoom of W's width, centred) and the two output pixel
sizes. Drawn with OpenCV (already a dependency) so the picture is reproducible.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parents[1] / "docs" / "hzsr_geometry.png"
INK, WIDE, TELE, VIEW = (40, 40, 40), (150, 110, 30), (40, 120, 230), (60, 160, 60)


def text(img, s, xy, colour=INK, scale=0.5):
    cv2.putText(img, s, xy, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def main() -> None:
    img = np.full((490, 900, 3), 255, np.uint8)
    # W: 480 x 320 at (40, 60)
    x0, y0, ww, wh = 40, 50, 480, 320
    cv2.rectangle(img, (x0, y0), (x0 + ww, y0 + wh), WIDE, 2)
    text(img, "W (wide): its full frame", (x0, y0 - 10), WIDE)
    # T's footprint: ratio 2.4, T aspect 4:3, turned 2 degrees, a little off-centre
    ratio, aspect, turn = 2.4, 4 / 3, np.radians(2.0)
    fw = ww / ratio
    fh = fw / aspect
    cx, cy = x0 + ww / 2 + 12, y0 + wh / 2 - 6
    c, s = np.cos(turn), np.sin(turn)
    corners = np.array([[-fw / 2, -fh / 2], [fw / 2, -fh / 2], [fw / 2, fh / 2], [-fw / 2, fh / 2]])
    corners = corners @ np.array([[c, s], [-s, c]]) + [cx, cy]
    cv2.polylines(img, [np.round(corners).astype(np.int32)], True, TELE, 2, cv2.LINE_AA)
    text(img, "T's footprint (registered:", (int(corners[0, 0]) + 8, int(corners[0, 1]) + 22), TELE)
    text(img, "scale, shift, turn)", (int(corners[0, 0]) + 8, int(corners[0, 1]) + 40), TELE)
    # output view: zoom 1.6, centred, W's aspect
    zoom = 1.6
    vw, vh = ww / zoom, wh / zoom
    vx, vy = x0 + (ww - vw) / 2, y0 + (wh - vh) / 2
    for i in range(0, int(vw), 12):  # dashed
        cv2.line(img, (int(vx + i), int(vy)), (int(vx + min(i + 6, vw)), int(vy)), VIEW, 2)
        cv2.line(img, (int(vx + i), int(vy + vh)), (int(vx + min(i + 6, vw)), int(vy + vh)), VIEW, 2)
    for i in range(0, int(vh), 12):
        cv2.line(img, (int(vx), int(vy + i)), (int(vx), int(vy + min(i + 6, vh))), VIEW, 2)
        cv2.line(img, (int(vx + vw), int(vy + i)), (int(vx + vw), int(vy + min(i + 6, vh))), VIEW, 2)
    text(img, "output view (zoom)", (int(vx) + 4, int(vy) - 6), VIEW)
    # width arrows
    ay = y0 + wh + 25
    cv2.arrowedLine(img, (x0, ay), (x0 + ww, ay), WIDE, 1, tipLength=0.02)
    cv2.arrowedLine(img, (x0 + ww, ay), (x0, ay), WIDE, 1, tipLength=0.02)
    text(img, "W width", (x0 + ww // 2 - 30, ay + 18), WIDE)
    ty = int(corners[:, 1].max()) + 14
    cv2.arrowedLine(img, (int(cx - fw / 2), ty), (int(cx + fw / 2), ty), TELE, 1, tipLength=0.05)
    cv2.arrowedLine(img, (int(cx + fw / 2), ty), (int(cx - fw / 2), ty), TELE, 1, tipLength=0.05)
    # legend
    lx = 550
    lines = [
        ("ratio = W width / width T covers in W", TELE),
        ("  (T's field of view; a prior from --set", TELE),
        ("  or EXIF, measured by hzsr.align)", TELE),
        ("zoom = W width / output view width", VIEW),
        ("  (the output's field of view; >= 1,", VIEW),
        ("  default = the measured ratio)", VIEW),
        ("T's pixel density = T px per W px", INK),
        ("  (measured; may differ from ratio:", INK),
        ("  sensors and crops differ)", INK),
        ("uncrop.pixel_size:", INK),
        ("  wide: output has W's pixel count", INK),
        ("        (as a phone; default)", INK),
        ("  tele: view at T's density", INK),
        ("        (all of T's detail kept)", INK),
    ]
    for i, (s, colour) in enumerate(lines):
        text(img, s, (lx, 80 + 24 * i), colour, 0.48)
    # the two pixel sizes as little grids
    gx, gy = 60, 470
    text(img, "output px (wide):", (gx, gy), INK, 0.45)
    for i in range(4):
        cv2.rectangle(img, (gx + 150 + 14 * i, gy - 12), (gx + 162 + 14 * i, gy), INK, 1)
    text(img, "output px (tele), density 2x:", (gx + 240, gy), INK, 0.45)
    for i in range(8):
        cv2.rectangle(img, (gx + 490 + 7 * i, gy - 6), (gx + 495 + 7 * i, gy - 1), TELE, 1)
    OUT.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(OUT), img)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
