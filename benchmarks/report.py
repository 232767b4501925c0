"""The benchmark's output: the machine it ran on, the printed table, and the Markdown the docs quote."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import lz4
import numpy as np

from tensordb_core.format.checksums import IMPLEMENTATION as CRC32_IMPLEMENTATION

# Every benchmark imports this module, and each row names its cache itself: a stream given no cache_dir would
# otherwise use the machine's $TENSORDB_CACHE_DIR (stream/disk_cache.py) and its "cold" rows start from kept tables.
os.environ.pop("TENSORDB_CACHE_DIR", None)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()], "platform": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__, "lz4": lz4.__version__, "crc32": CRC32_IMPLEMENTATION,
            "processor": platform.processor() or platform.machine()}


def write_json(path: str | os.PathLike[str], result: dict[str, Any]) -> Path:
    """Write a benchmark's result where it was asked (folders made); returns the path for the closing line."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    """The table: ratios to the local ceiling, to the sequential GET loop and to the remote chunk ceiling."""
    print(f"{'dataset':<10} {'row':<44} {'samples':>7} {'samples/s':>11} {'MB/s':>7} {'vs ceiling':>10} "
          f"{'vs seq GET':>10} {'vs remote ceil':>14} {'CPU us/sample':>13}")

    def ratio(r: dict[str, Any], key: str, digits: int) -> str:
        return f"{r[key]:.{digits}f}x" if r.get(key) is not None else ""

    for r in rows:
        print(f"{r['dataset']:<10} {r['row']:<44} {r['samples']:>7} {r['samples_per_s']:>11,.0f} "
              f"{r['MB_per_s']:>7,.0f} {ratio(r, 'vs_ceiling', 2):>10} {ratio(r, 'vs_sequential_get', 1):>10} "
              f"{ratio(r, 'vs_remote_ceiling', 2):>14} {_cpu(r):>13}")


def markdown_table(result: dict[str, Any]) -> str:
    """A saved result as a Markdown table (what README/docs quote): ``stream.py --markdown results/stream.json``."""
    def x(r: dict[str, Any], key: str, digits: int) -> str:
        return f"{r[key]:.{digits}f}x" if r.get(key) is not None else ""

    lines = ["| dataset | row | samples | samples/s | MB/s | vs ceiling | vs seq GET | vs remote ceiling | CPU µs/sample |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
    for r in result["rows"]:
        lines.append(f"| {r['dataset']} | {r['row']} | {r['samples']:,} | {r['samples_per_s']:,.0f} | "
                     f"{r['MB_per_s']:,.0f} | {x(r, 'vs_ceiling', 2)} | {x(r, 'vs_sequential_get', 1)} | "
                     f"{x(r, 'vs_remote_ceiling', 2)} | {_cpu(r)} |")
    return "\n".join(lines)


def _cpu(r: dict[str, Any]) -> str:
    """The CPU column: empty for rows whose CPU time was not measured (loader workers, time to first batch)."""
    cpu = r.get("cpu_us_per_sample")
    return "" if cpu is None else f"{cpu:.1f}"
