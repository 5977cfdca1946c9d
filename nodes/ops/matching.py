"""Keypoint matching between two 8-bit gray images: descriptors, Lowe's ratio test, cross check."""
from __future__ import annotations

import cv2
import numpy as np


def match_keypoints(gray_a: np.ndarray, gray_b: np.ndarray, *, fast_threshold: int = 10,
                    max_keypoints: int = 4000, ratio_test: float = 0.8
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Matched point pairs (N, 2) float32 in a and b: FAST corners + ORB descriptors.

    Matches pass Lowe's ratio test and are mutual nearest neighbours (cross check), which
    keeps random matches between unrelated images rare.
    """
    fast = cv2.FastFeatureDetector_create(threshold=fast_threshold, nonmaxSuppression=True)
    orb = cv2.ORB_create()
    described = []
    for gray in (gray_a, gray_b):
        keypoints = sorted(fast.detect(gray, None), key=lambda k: -k.response)[:max_keypoints]
        for k in keypoints:
            k.size = 31.0  # ORB's patch size: FAST gives no scale
        keypoints, descriptors = orb.compute(gray, keypoints)
        described.append((keypoints, descriptors))
    (kp_a, des_a), (kp_b, des_b) = described
    if des_a is None or des_b is None or len(kp_a) < 2 or len(kp_b) < 2:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    forward = matcher.knnMatch(des_a, des_b, k=2)
    backward = {m[0].queryIdx: m[0].trainIdx for m in matcher.knnMatch(des_b, des_a, k=1) if m}
    pairs = [(m[0].queryIdx, m[0].trainIdx) for m in forward
             if len(m) == 2 and m[0].distance < ratio_test * m[1].distance
             and backward.get(m[0].trainIdx) == m[0].queryIdx]
    if not pairs:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    ia, ib = np.array(pairs).T
    pa = np.array([kp_a[i].pt for i in ia], np.float32)
    pb = np.array([kp_b[i].pt for i in ib], np.float32)
    return pa, pb
