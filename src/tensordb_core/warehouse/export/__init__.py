"""Export samples to the files other ML tools read: npz, Parquet, WebDataset shards, a Hugging Face dataset.

``export_data(db, path, query, format="parquet")`` writes the samples that
match ``query`` (or a named dataset version) in one format; :data:`FORMATS`
is the table of formats (the module that writes each one lazily imported,
the library it needs and the extra that installs it, the options it takes),
so ``import tensordb_core.warehouse.export`` loads neither pyarrow nor ``datasets``.
Every export reads the warehouse the same way (:mod:`.source`: one index
scan for the schema, then pages of samples through the cursor, media kept
encoded) and lands the same way (:mod:`.target`: refused if the path holds
something, written beside it, renamed into place when complete).
docs/export.md says what each field becomes in each format.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tensordb_core.errors import InvalidArgument, MissingDependency
from tensordb_core.warehouse.arguments import query_dict
from tensordb_core.warehouse.export.source import Page, Samples, Schema, check_fields, pages, scan
from tensordb_core.warehouse.export.target import check_target, staged

#: Samples read per page (bounds memory: one page of samples, media encoded, is held at a time).
DEFAULT_PAGE_SIZE = 512


@dataclass(frozen=True)
class Format:
    """One export format: the module that writes it, whether it writes a directory, what it needs installed."""

    name: str
    module: str
    directory: bool
    requires: tuple[str, ...] = ()
    extra: str = "export"
    options: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""

    def writer(self) -> Callable[..., None]:
        """The module's ``write(stage, pages, schema, options)`` (``MissingDependency`` names the extra to install)."""
        for requirement in self.requires:
            try:
                importlib.import_module(requirement)
            except ImportError as exc:
                raise MissingDependency(f"format {self.name!r} needs {requirement}: pip install "
                                        f"'tensordb[{self.extra}]'") from exc
        return importlib.import_module(self.module).write


#: The formats, by name.  Options are keyword arguments of export_data that only that format takes.
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("npz", "tensordb_core.warehouse.export.npz", directory=False,
           summary="one numpy array per field in a .npz file (np.load)"),
    Format("parquet", "tensordb_core.warehouse.export.parquet", directory=False, requires=("pyarrow",),
           options={"row_group_size": 4096, "compression": "zstd"},
           summary="one Parquet file with row groups (pyarrow)"),
    Format("webdataset", "tensordb_core.warehouse.export.webdataset", directory=True,
           options={"shard_samples": 10_000, "shard_bytes": 1 << 30},
           summary="a directory of tar shards NAME-000000.tar of {key}.{ext} members (webdataset)"),
    Format("hf", "tensordb_core.warehouse.export.hf", directory=True, requires=("datasets", "pyarrow"),
           summary="a Hugging Face datasets dataset saved with save_to_disk (datasets.load_from_disk)"),
)}


def _check_options(fmt: Format, options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(fmt.options))
    if unknown:
        takes = ", ".join(fmt.options) or "no options"
        raise InvalidArgument(f"format {fmt.name!r} does not take {unknown}; it takes {takes}")
    merged = {**fmt.options, **options}
    for name, value in merged.items():
        default = fmt.options[name]
        if isinstance(default, int) and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise InvalidArgument(f"{name} must be a positive integer, not {value!r}")
        if isinstance(default, str) and not isinstance(value, str):
            raise InvalidArgument(f"{name} must be a string, not {value!r}")
    return merged


def check_format(name: Any) -> Format:
    """The :class:`Format` called ``name``; :class:`InvalidArgument` listing the formats otherwise."""
    fmt = FORMATS.get(name) if isinstance(name, str) else None
    if fmt is None:
        raise InvalidArgument(f"unknown export format {name!r}: choose one of {', '.join(FORMATS)}")
    return fmt


def export_data(db: Samples, path: str | os.PathLike[str], query: Mapping[str, Any] | None = None, *,
                dataset: str | None = None, format: str = "parquet", fields: Sequence[str] | None = None,
                progress: Callable[[int], None] | None = None, overwrite: bool = False,
                page_size: int = DEFAULT_PAGE_SIZE, **options: Any) -> dict[str, Any]:
    """Write the samples matching ``query`` (or pinned by ``dataset``) to ``path`` in ``format``; a summary dict.

    ``fields`` keeps only those fields (and reads only their bytes);
    ``progress(n)`` is called as each page of ``n`` samples is written (the
    CLI passes its progress bar's ``advance``); ``options`` are the format's
    own (:data:`FORMATS`: ``row_group_size``, ``shard_samples``, ...).
    Everything is checked before anything is written: an unknown format or
    option, bad fields, a path that holds something (unless ``overwrite``)
    or cannot be written, and a query that matches nothing raise a
    :class:`~tensordb_core.errors.TensorDBError` and leave ``path`` as it
    was; a failure while writing leaves it as it was too.  Returns
    ``{"format", "path", "samples", "fields"}``.
    """
    raw = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not isinstance(raw, str) or not raw or "\x00" in raw:
        raise InvalidArgument(f"path must be a file or directory path (a str without NUL), not {path!r:.60}")
    if query is not None:
        query_dict(query)  # a string or a list is a typed error here, not a TypeError in the scan
    fmt = check_format(format)
    merged = _check_options(fmt, options)
    names = check_fields(fields)
    if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
        raise InvalidArgument(f"page_size must be a positive integer, not {page_size!r}")
    if dataset is not None and (not isinstance(dataset, str) or not dataset):
        raise InvalidArgument(f"dataset must be a dataset version's name, not {dataset!r}")
    target = check_target(path, overwrite=bool(overwrite), directory=fmt.directory)
    write = fmt.writer()
    schema = scan(db, query, dataset=dataset, fields=names, page_size=page_size)
    source = pages(db, query, schema, dataset=dataset, page_size=page_size)
    with staged(target, directory=fmt.directory) as stage:
        write(stage, _counted(source, progress), schema, merged)
    return {"format": fmt.name, "path": str(target), "samples": schema.count,
            "fields": {name: spec.describe() for name, spec in schema.fields.items()}}


def _counted(source: Iterator[Page], progress: Callable[[int], None] | None) -> Iterator[Page]:
    """The pages, reporting each one's samples as the writer takes the next (so as each page is written)."""
    previous = 0
    for page in source:
        if progress is not None and previous:
            progress(previous)
        yield page
        previous = len(page.ids)
    if progress is not None and previous:
        progress(previous)


__all__ = ["DEFAULT_PAGE_SIZE", "FORMATS", "Format", "Page", "Schema", "check_format", "export_data"]
