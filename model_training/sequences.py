"""Camera-like frame sequences made from one still photo, to fit and measure the fusion of frames
(app.model.fusion) where no labelled video can be had.

What a camera changes from frame to frame, each drifting smoothly along the sequence (a random
walk from a random start): where the face sits (shift), how large it is (scale), the head's roll
(rotation), light (brightness, contrast), focus (blur), sensor noise and JPEG compression. What
it does not make: new poses (the head turning away), expressions, occlusions, motion blur, other
people: the same face, seen by a shaky camera in changing light.
"""

from __future__ import annotations

import cv2
import numpy as np

SHIFT = 0.04  # largest drift of the centre, as a share of the photo's side
SCALE = (0.85, 1.15)
ROTATION_DEG = 8.0
BRIGHTNESS = 25.0  # largest offset, in 0..255 levels
CONTRAST = 0.15  # factor within [1 - c, 1 + c]
BLUR_SIGMA = 1.2  # largest blur σ, in pixels
NOISE_SIGMA = 6.0  # largest sensor-noise σ, in 0..255 levels
JPEG_QUALITY = (40, 90)


def _walk(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """n values within [lo, hi] that drift: a random start, then steps of a tenth of the range."""
    steps = rng.normal(0.0, 0.1 * (hi - lo), n)
    steps[0] = rng.uniform(lo, hi)
    return np.clip(np.cumsum(steps), lo, hi)


def camera_frames(rgb: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """n frames of `rgb` (RGB uint8) as a camera filming it might give them, same size."""
    h, w = rgb.shape[:2]
    dx, dy = (_walk(rng, n, -SHIFT, SHIFT) * side for side in (w, h))
    scale, angle = _walk(rng, n, *SCALE), _walk(rng, n, -ROTATION_DEG, ROTATION_DEG)
    brightness, contrast = _walk(rng, n, -BRIGHTNESS, BRIGHTNESS), _walk(rng, n, 1 - CONTRAST, 1 + CONTRAST)
    blur, noise = _walk(rng, n, 0.0, BLUR_SIGMA), _walk(rng, n, 0.0, NOISE_SIGMA)
    quality = _walk(rng, n, *JPEG_QUALITY)
    frames = []
    for i in range(n):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), float(angle[i]), float(scale[i]))
        m[:, 2] += (dx[i], dy[i])
        frame = cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        frame = (frame.astype(np.float32) - 128.0) * contrast[i] + 128.0 + brightness[i]
        if blur[i] > 0.3:
            frame = cv2.GaussianBlur(frame, (0, 0), float(blur[i]))
        frame = frame + rng.normal(0.0, float(noise[i]), frame.shape)
        frame = np.clip(frame, 0, 255).astype(np.uint8)
        ok, jpeg = cv2.imencode(".jpg", frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality[i])])
        frames.append(cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[:, :, ::-1].copy())
    return frames
