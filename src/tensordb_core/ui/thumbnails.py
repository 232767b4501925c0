"""Small PNG previews of stored images and image-shaped arrays, made on the server.

Why on the server: a stored JPEG can be megapixels and an array has no
browser format at all; the browser gets a PNG of at most :data:`MAX_SIDE`
pixels a side, and never the original bytes.  Arrays become images only when
they look like one (H×W, or H×W×C with C in 1, 3, 4); values are scaled from
the array's own min..max to 0..255, so float images and masks both show.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from tensordb_core.errors import CodecError, MissingDependency

#: The longest side of a thumbnail, in pixels (the page shows them at 96 CSS pixels).
MAX_SIDE = 128
#: Smallest side for an array to be drawn as an image (a 1×64 vector is summarised, not drawn).
MIN_SIDE = 4


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - the ui extra installs Pillow
        raise MissingDependency("thumbnails need Pillow: pip install 'tensordb[ui]'") from exc
    return Image


def looks_like_image(shape: tuple[int, ...]) -> bool:
    """H×W or H×W×C (C in 1, 3, 4) with both sides at least :data:`MIN_SIDE`."""
    if len(shape) == 2:
        return min(shape) >= MIN_SIDE
    return len(shape) == 3 and shape[2] in (1, 3, 4) and min(shape[:2]) >= MIN_SIDE


def array_to_png(array: np.ndarray) -> bytes:
    """An image-shaped array as a PNG thumbnail (scaled to 0..255 over its own range)."""
    a = np.asarray(array)
    if not looks_like_image(a.shape):
        raise CodecError(f"an array of shape {list(a.shape)} is not an image (H×W or H×W×C with C in 1, 3, 4)")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.dtype != np.uint8:
        f = a.astype(np.float64)
        f = np.nan_to_num(f, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(f.min()), float(f.max())
        a = np.zeros(f.shape, np.uint8) if hi <= lo else ((f - lo) * (255.0 / (hi - lo))).round().astype(np.uint8)
    image = _pillow().fromarray(np.ascontiguousarray(a))
    return _png(image)


def encoded_to_png(data: bytes) -> bytes:
    """Stored JPEG/PNG bytes as a PNG thumbnail (decoded here, never sent as stored)."""
    Image = _pillow()
    try:
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at a reduced scale, much faster for big images
        image.load()
    except Exception as exc:
        raise CodecError(f"the stored image could not be decoded: {type(exc).__name__}") from exc
    if image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    return _png(image)


def _png(image: Any) -> bytes:
    Image = _pillow()
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    elif max(image.size) < 64:  # tiny images (8x8 digits) enlarged with crisp pixels, so the browser need not
        scale = max(1, 64 // max(image.size))
        image = image.resize((image.size[0] * scale, image.size[1] * scale), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def summarise(array: np.ndarray) -> dict[str, Any]:
    """Shape, dtype and (for numbers) min/max/mean of an array: what a table cell can show of it."""
    a = np.asarray(array)
    out: dict[str, Any] = {"shape": list(a.shape), "dtype": str(a.dtype)}
    if a.size and (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        f = a.astype(np.float64)
        finite = f[np.isfinite(f)]
        if finite.size:
            out.update(min=float(finite.min()), max=float(finite.max()), mean=float(finite.mean()))
    return out
