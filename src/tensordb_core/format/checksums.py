"""The CRC-32 every stored segment carries, by the fastest implementation installed.

Why a choice: the stream checks the CRC-32 of every segment it reads, and
CPython's ``zlib.crc32`` (zlib 1.2, no carry-less multiply) runs at about
3.6 GB/s here: for 12 KiB image samples that is a fifth of the stream's CPU.
``zlib-ng`` (extra ``tensordb[fast]``, part of ``[demo]`` and ``[all]``)
computes the identical CRC-32 at about 24 GB/s.  The values are equal, so a
warehouse written with one reads with the other; core does not require it.
"""

from __future__ import annotations

import zlib

try:  # same polynomial, same initial value: a drop-in for the stored checksums
    from zlib_ng.zlib_ng import crc32 as _crc32_ng
except ImportError:  # pragma: no cover - depends on the extras installed
    _crc32_ng = None

#: ``crc32(data) -> int``, always equal to ``zlib.crc32(data)``.
crc32 = _crc32_ng or zlib.crc32

#: Which implementation :data:`crc32` is (recorded with every benchmark run).
IMPLEMENTATION = "zlib-ng" if _crc32_ng is not None else "zlib"
