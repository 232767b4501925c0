"""Media segments: JPEG and PNG images stored as their own file bytes, and opaque ``bytes``.

Why store the encoded file: decoded to raw pixels, a photo grows 5-10x and
lz4 wins little of it back; a JPEG's own bytes are the compact form, and the
reader decodes them.  So a media segment's stored bytes *are* a complete
JPEG (JFIF) or PNG file, readable by any image tool, and ``bytes`` segments
are stored exactly as given.  The segment description still records the
decoded ``dtype`` and ``shape`` (read from the file's header at import, never
by decoding it), so a reader can preallocate a batch before decoding.

Decoding library (measured on 300 synthetic RGB JPEGs of 256-500 px, ~100 KiB
each, 2 shared cores): simplejpeg (libjpeg-turbo, releases the GIL) 1.44 ms an
image, Pillow 13 1.80 ms; simplejpeg also decodes straight into a caller's
buffer.  JPEG goes through simplejpeg when it is installed (extra
``[media]``), PNG and anything simplejpeg refuses (CMYK JPEGs) through Pillow,
whose decoders also release the GIL.  Both are imported on first use.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from tensordb_core.errors import CodecError, MissingDependency

#: Codecs whose stored bytes are a whole image file (decoded to uint8/uint16 pixels on read).
IMAGE_CODECS = ("jpeg", "png")
#: Every media codec: images, and ``bytes`` (stored and returned as they are).
MEDIA_CODECS = (*IMAGE_CODECS, "bytes")
#: Small integers for the stream's codec column (0 and 1 are the array codecs none and lz4).
MEDIA_IDS = {"jpeg": 2, "png": 3, "bytes": 4}
DEFAULT_JPEG_QUALITY = 90
#: Pillow modes we return as they are: mode -> (dtype, channels; 0 = a 2-D image).
_MODES = {"L": ("|u1", 0), "RGB": ("|u1", 3), "RGBA": ("|u1", 4), "LA": ("|u1", 2), "I;16": ("<u2", 0)}


@dataclass(frozen=True)
class Encoded:
    """Media that is already encoded: ``tdb.Encoded(jpeg_file_bytes, "jpeg")``.

    Imported byte for byte (never re-encoded); its decoded shape and dtype
    are read from the file's header at import, so a corrupt or truncated
    header is refused then.  ``codec`` is ``"jpeg"`` or ``"png"``.
    """

    data: bytes
    codec: str

    def __post_init__(self) -> None:
        if not isinstance(self.data, (bytes, bytearray, memoryview)):
            raise CodecError(f"Encoded data must be bytes, not {type(self.data).__name__}")
        if self.codec not in IMAGE_CODECS:
            raise CodecError(f"unknown media codec {self.codec!r}: Encoded takes one of {IMAGE_CODECS}")
        if not isinstance(self.data, bytes):
            object.__setattr__(self, "data", bytes(self.data))


def parse_encode_spec(spec: Any) -> tuple[str, int | None]:
    """``"jpeg"`` / ``"jpeg:90"`` / ``"png"`` -> ``(codec, quality)``; :class:`CodecError` otherwise."""
    if not isinstance(spec, str):
        raise CodecError(f"an encode spec is a string such as 'jpeg', 'jpeg:90' or 'png', not {spec!r}")
    codec, _, rest = spec.partition(":")
    if codec not in IMAGE_CODECS:
        raise CodecError(f"unknown codec {codec!r} in encode spec {spec!r}: choose one of {IMAGE_CODECS}")
    if not rest:
        return codec, DEFAULT_JPEG_QUALITY if codec == "jpeg" else None
    if codec != "jpeg" or not rest.isdigit() or not 1 <= int(rest) <= 100:
        raise CodecError(f"bad encode spec {spec!r}: only jpeg takes a quality, an integer 1-100 ('jpeg:90')")
    return codec, int(rest)


def _simplejpeg() -> Any:
    try:
        import simplejpeg
    except ImportError:
        return None
    return simplejpeg


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:
        raise MissingDependency("image codecs need Pillow (and simplejpeg): pip install 'tensordb[media]'") from exc
    return Image


def encode_image(array: np.ndarray, codec: str, quality: int | None = None) -> bytes:
    """Encode ``array`` (H, W), (H, W, 1|3|4) as ``codec``; :class:`CodecError` if the codec cannot hold it.

    JPEG takes uint8 gray or RGB; PNG takes uint8 gray/gray+alpha/RGB/RGBA
    and uint16 gray (lossless).  Anything else (float data, 5 channels) is
    refused rather than silently converted.
    """
    arr = np.ascontiguousarray(array)
    shape = arr.shape
    channels = shape[2] if arr.ndim == 3 else 0
    if arr.ndim not in (2, 3) or 0 in shape:
        raise CodecError(f"{codec} stores images of shape (H, W) or (H, W, C), not {shape}")
    if codec == "jpeg":
        if arr.dtype != np.uint8 or channels not in (0, 1, 3):
            raise CodecError(f"jpeg stores uint8 images with 1 or 3 channels, not {arr.dtype} {shape}: "
                             "convert (e.g. (x * 255).astype(np.uint8)) or use png / no codec")
        sj = _simplejpeg()
        if sj is not None:
            img = arr.reshape(shape[0], shape[1], channels or 1)
            return sj.encode_jpeg(img, quality=quality or DEFAULT_JPEG_QUALITY,
                                  colorspace="GRAY" if channels in (0, 1) else "RGB")
        pil = _pillow().fromarray(arr.reshape(shape[:2]) if channels in (0, 1) else arr)
        out = io.BytesIO()
        pil.save(out, format="JPEG", quality=quality or DEFAULT_JPEG_QUALITY)
        return out.getvalue()
    if codec == "png":
        ok = (arr.dtype == np.uint8 and channels in (0, 1, 2, 3, 4)) or (arr.dtype == np.uint16 and channels in (0, 1))
        if not ok:
            raise CodecError(f"png stores uint8 images with 1-4 channels or uint16 gray images, not {arr.dtype} {shape}")
        img = arr.reshape(shape[:2]) if channels in (0, 1) else arr
        if img.dtype == np.uint16:
            pil = _pillow().frombuffer("I;16", (shape[1], shape[0]), img.astype("<u2").tobytes())
        else:
            pil = _pillow().fromarray(img)
        out = io.BytesIO()
        pil.save(out, format="PNG", compress_level=6)
        return out.getvalue()
    raise CodecError(f"unknown image codec {codec!r}: choose one of {IMAGE_CODECS}")


def probe_image(data: bytes, codec: str) -> tuple[str, tuple[int, ...]]:
    """The ``(dtype, shape)`` that decoding ``data`` gives, read from the header (no pixel decoding)."""
    pil = _pillow()
    try:
        image = pil.open(io.BytesIO(data))
        fmt, mode, (width, height) = image.format, image.mode, image.size
    except (OSError, ValueError, SyntaxError, pil.DecompressionBombError) as exc:  # UnidentifiedImageError: OSError
        raise CodecError(f"not a readable {codec} file: {exc}") from exc
    if fmt != {"jpeg": "JPEG", "png": "PNG"}[codec]:
        raise CodecError(f"the bytes are a {fmt or 'unknown'} file, not {codec}")
    dtype, channels = _MODES.get(mode, ("|u1", 4 if "A" in mode or mode == "P" and "transparency" in image.info else 3))
    if codec == "jpeg" and mode not in ("L", "RGB"):
        dtype, channels = "|u1", 3  # CMYK / YCCK JPEGs are returned as RGB
    return dtype, (height, width, channels) if channels else (height, width)


def decode_image(data: bytes | memoryview, codec: str, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Decode an image segment to the ``dtype``/``shape`` recorded at import; :class:`CodecError` if it cannot."""
    channels = shape[2] if len(shape) == 3 else 0
    if codec == "jpeg":
        sj = _simplejpeg()
        if sj is not None:
            try:
                out = sj.decode_jpeg(data, colorspace="GRAY" if channels in (0, 1) else "RGB")
            except ValueError:
                out = None  # CMYK and other files libjpeg-turbo does not convert: Pillow below
            if out is not None:
                return _as_recorded(out, dtype, shape, codec)
    elif codec != "png":
        raise CodecError(f"unknown image codec {codec!r}")
    pil = _pillow()
    try:
        image = pil.open(io.BytesIO(data))
        if image.format != {"jpeg": "JPEG", "png": "PNG"}[codec]:
            raise CodecError(f"the stored bytes are a {image.format} file, not {codec}")
        mode = image.mode
        want = next((m for m, (dt, ch) in _MODES.items() if dt == dtype.str and ch == channels), None)
        if want is None:
            want = {0: "L", 1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}.get(channels, "RGB")
        if mode != want:
            image = image.convert(want)
        out = np.asarray(image)
    except (OSError, ValueError, SyntaxError, pil.DecompressionBombError) as exc:
        raise CodecError(f"{codec} data failed to decode: {exc}") from exc
    return _as_recorded(out, dtype, shape, codec)


def _as_recorded(out: np.ndarray, dtype: np.dtype, shape: tuple[int, ...], codec: str) -> np.ndarray:
    if out.dtype != dtype or out.size != int(np.prod(shape)):
        raise CodecError(f"{codec} data decoded to {out.dtype} {out.shape}, the segment records {dtype} {list(shape)}")
    return out.reshape(shape)


__all__ = ["DEFAULT_JPEG_QUALITY", "IMAGE_CODECS", "MEDIA_CODECS", "MEDIA_IDS", "Encoded", "decode_image",
           "encode_image", "parse_encode_spec", "probe_image"]
