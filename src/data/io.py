"""Read and write dataset folders: one Parquet file or one folder of Parquet parts per table.

A dataset folder holds, for each table, either ``<name>.parquet`` or ``<name>/part-*.parquet`` (never both).
Files whose name starts with ``.`` or ``_`` are ignored, so a half-written temporary file is never read.

In memory, columns of the canonical tables (:mod:`bankseg.data.schema`) come back as:
- categorical columns: pandas ``category`` whose categories are the schema's list, in the schema's order, so
  codes are stable across files and runs. Values outside the list are *kept*, appended after the schema's
  categories, so validation can see and reject them instead of them silently turning into nulls;
- date and timestamp columns: ``datetime64`` (Parquet ``date32`` becomes midnight);
- everything else as pyarrow's pandas conversion gives it (text as pandas 3 ``str``).

All writes are atomic: a table is written to a hidden temporary file and moved into place with
:func:`os.replace`; a whole dataset is written to a temporary folder and renamed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from bankseg.data.schema import TABLE_NAMES, TABLES

_IGNORED_PREFIXES = (".", "_")


def table_path(root: Path | str, name: str) -> Path | None:
    """The file (``<name>.parquet``) or parts folder (``<name>/``) holding a table, None if absent.

    Raises ValueError when both layouts exist: which one is the table would be a guess.
    """
    root = Path(root)
    file = root / f"{name}.parquet"
    folder = root / name
    has_file = file.is_file()
    has_folder = folder.is_dir() and any(_part_files(folder))
    if has_file and has_folder:
        raise ValueError(f"dataset folder {root} holds table {name!r} twice: {file.name} and {folder.name}/")
    if has_file:
        return file
    if has_folder:
        return folder
    return None


def _part_files(folder: Path) -> list[Path]:
    """Parquet part files of a table folder, in name order, skipping hidden and temporary files."""
    return sorted(
        p for p in folder.glob("*.parquet") if p.is_file() and not p.name.startswith(_IGNORED_PREFIXES)
    )


def _require_table(root: Path | str, name: str) -> Path:
    path = table_path(root, name)
    if path is None:
        root = Path(root)
        where = "does not exist" if not root.is_dir() else "has no such table"
        raise FileNotFoundError(
            f"dataset folder {root} {where}: table {name!r} needs {name}.parquet or {name}/part-*.parquet"
        )
    return path


def _arrow_dataset(path: Path) -> ds.Dataset:
    if path.is_dir():
        return ds.dataset([str(p) for p in _part_files(path)], format="parquet")
    return ds.dataset(str(path), format="parquet")


def read_table(
    root: Path | str,
    name: str,
    columns: Sequence[str] | None = None,
    filters: list[tuple] | list[list[tuple]] | None = None,
) -> pd.DataFrame:
    """One table of a dataset folder as a DataFrame, in either layout.

    ``filters`` use pyarrow's DNF form, e.g. ``[("customer_id", "in", ids)]``; they are pushed down to the
    Parquet scan, so only matching row groups are decoded. Raises FileNotFoundError naming the folder when
    the table is absent.
    """
    dataset = _arrow_dataset(_require_table(root, name))
    expression = pq.filters_to_expression(filters) if filters else None
    table = dataset.to_table(columns=list(columns) if columns is not None else None, filter=expression)
    return _to_pandas(table, name)


def iter_table_parts(
    root: Path | str, name: str, columns: Sequence[str] | None = None
) -> Iterator[pd.DataFrame]:
    """Yield a table one part at a time so memory stays bounded by the largest part.

    A part is one file of a parts folder, or one row group of a single-file table. Parts come in a stable
    order (file name, then row group), the same on every call.
    """
    path = _require_table(root, name)
    files = _part_files(path) if path.is_dir() else [path]
    cols = list(columns) if columns is not None else None
    for file in files:
        parquet = pq.ParquetFile(file)
        if parquet.metadata.num_row_groups == 0:
            yield _to_pandas(parquet.schema_arrow.empty_table().select(cols or parquet.schema_arrow.names), name)
            continue
        if path.is_dir():
            yield _to_pandas(parquet.read(columns=cols), name)
        else:
            for group in range(parquet.metadata.num_row_groups):
                yield _to_pandas(parquet.read_row_group(group, columns=cols), name)


def table_files(root: Path | str, name: str) -> list[Path]:
    """The Parquet files of a table in read order: its one file, or its parts folder's files by name."""
    path = _require_table(root, name)
    return _part_files(path) if path.is_dir() else [path]


def unreadable_file(path: Path) -> str | None:
    """Why a Parquet file cannot be read (truncated, corrupt, not Parquet), or None when its footer reads."""
    try:
        pq.read_metadata(path)
    except (pa.ArrowException, OSError) as error:
        kind = "truncated or corrupt" if "magic bytes" in str(error) or "footer" in str(error) else "unreadable"
        return f"{path} is not a readable Parquet file ({kind}: {type(error).__name__})"
    return None


def copy_table_without_rows(root: Path | str, name: str, drop: np.ndarray, dest: Path | str) -> Path:
    """Copy one table into the folder ``dest`` leaving out the rows at positions ``drop``; returns the copy.

    Positions count over the whole table in :func:`iter_table_parts` order (file name, then row group). The
    layout, part file names, row groups and Arrow schema of the source are kept, so readers (and the feature
    builder's customer-partition detection) see the same table minus those rows. With nothing to drop the copy
    is a symbolic link to the source.
    """
    source = _require_table(root, name)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / source.name
    drop = np.unique(np.asarray(drop, dtype=np.int64))
    if len(drop) == 0:
        target.symlink_to(source.resolve(), target_is_directory=source.is_dir())
        return target
    if source.is_dir():
        target.mkdir()
    offset = 0
    for file in table_files(root, name):
        parquet = pq.ParquetFile(file)
        out = target / file.name if source.is_dir() else target
        with pq.ParquetWriter(out, parquet.schema_arrow) as writer:
            for group in range(parquet.metadata.num_row_groups):
                table = parquet.read_row_group(group)
                n = table.num_rows
                local = drop[(drop >= offset) & (drop < offset + n)] - offset
                keep = np.ones(n, dtype=bool)
                keep[local] = False
                writer.write_table(table.filter(pa.array(keep)))
                offset += n
    return target


def write_empty_table(root: Path | str, name: str) -> Path:
    """Write a canonical table with no rows (canonical column types, text for categories) into ``root``."""
    kinds = {"int": pa.int64(), "float": pa.float64(), "datetime": pa.timestamp("us"), "category": pa.string()}
    schema = pa.schema([(c.name, kinds[c.kind]) for c in TABLES[name].columns])
    target = Path(root) / f"{name}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_parquet(schema.empty_table(), target)
    return target


def table_columns(root: Path | str, name: str) -> list[str]:
    """Column names of a table, from its (first) file's Parquet schema, without reading data."""
    path = _require_table(root, name)
    first = _part_files(path)[0] if path.is_dir() else path
    return list(pq.read_schema(first).names)


def read_dataset(root: Path | str, tables: Iterable[str] | None = None) -> dict[str, pd.DataFrame]:
    """The canonical tables of a dataset folder, by name.

    With ``tables=None`` every canonical table present is read (absent ones are left out: validation says
    which are required). Named tables must all be present.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    names = list(tables) if tables is not None else [n for n in TABLE_NAMES if table_path(root, n)]
    return {name: read_table(root, name) for name in names}


def write_table(df: pd.DataFrame, root: Path | str, name: str, part: int | None = None) -> Path:
    """Write one table (``part=None``) or one part of it (``<name>/part-00007.parquet``), atomically.

    The frame's index is not written. Raises ValueError if the other layout of the same table already
    exists in the folder (a file next to a parts folder would make the table ambiguous).
    """
    root = Path(root)
    if part is None:
        target = root / f"{name}.parquet"
        other = root / name
        clash = other.is_dir() and any(_part_files(other))
    else:
        if part < 0:
            raise ValueError(f"part number must be >= 0, got {part}")
        target = root / name / f"part-{part:05d}.parquet"
        other = root / f"{name}.parquet"
        clash = other.is_file()
    if clash:
        raise ValueError(f"dataset folder {root} already holds table {name!r} as {other.name}; remove it first")
    target.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_parquet(pa.Table.from_pandas(df, preserve_index=False), target)
    return target


def write_parquet(df: pd.DataFrame, path: Path | str) -> Path:
    """Write a frame to one Parquet file atomically (temp file + os.replace); the index is not written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_parquet(pa.Table.from_pandas(df, preserve_index=False), path)
    return path


def _atomic_write_parquet(table: pa.Table, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_dataset(tables: dict[str, pd.DataFrame], root: Path | str) -> None:
    """Write a dataset folder (one file per table) so readers see the old folder or the new one, never half.

    The tables go to a temporary sibling folder, which then replaces ``root``. An existing ``root`` is moved
    aside first and deleted only once the new folder is in place; on failure it is put back.
    """
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f".{root.name}.{uuid.uuid4().hex}.tmp")
    old = root.with_name(f".{root.name}.{uuid.uuid4().hex}.old")
    try:
        tmp.mkdir()
        for name, df in tables.items():
            pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp / f"{name}.parquet")
        if root.exists():
            os.rename(root, old)
        try:
            os.rename(tmp, root)
        except OSError:
            if old.exists():
                os.rename(old, root)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def dataset_fingerprint(root: Path | str, *, content: bool = True) -> str:
    """A sha256 hex digest identifying the canonical tables of a dataset folder.

    It covers each table file's path relative to ``root``, its size, and either the sha256 of its bytes
    (``content=True``) or its Parquet footer (``content=False``: row counts, column statistics and chunk sizes,
    read in milliseconds even for a large bank). Files are taken in sorted order, so the digest does not
    depend on the file system; pyarrow writes identical bytes for identical data, so re-writing the same
    tables gives the same fingerprint. Other files in the folder (ground truth, rejects) are not covered.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    files: list[Path] = []
    for name in TABLE_NAMES:
        path = table_path(root, name)
        if path is not None:
            files.extend(_part_files(path) if path.is_dir() else [path])
    if not files:
        raise ValueError(f"dataset folder {root} holds none of the tables {list(TABLE_NAMES)}")
    digest = hashlib.sha256()
    for file in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(str(file.stat().st_size).encode() + b"\0")
        digest.update(_file_digest(file) if content else _parquet_footer(file))
    return digest.hexdigest()


def _file_digest(path: Path) -> bytes:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").digest()


def _parquet_footer(path: Path) -> bytes:
    """The raw Thrift footer of a Parquet file (its metadata), without reading the data pages."""
    with path.open("rb") as f:
        f.seek(-8, os.SEEK_END)
        length, magic = struct.unpack("<i4s", f.read(8))
        if magic != b"PAR1":
            raise ValueError(f"{path} is not a Parquet file")
        f.seek(-8 - length, os.SEEK_END)
        return f.read(length)


def _to_pandas(table: pa.Table, name: str) -> pd.DataFrame:
    """Arrow -> pandas with the canonical in-memory dtypes for the known tables' categorical columns."""
    spec = TABLES.get(name)
    categorical = {c.name: c.values or () for c in spec.columns if c.kind == "category"} if spec else {}
    for i, field in enumerate(table.schema):
        if field.name in categorical and (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            table = table.set_column(i, field.name, table.column(i).dictionary_encode())
    df = table.to_pandas(date_as_object=False)
    for column, values in categorical.items():
        if column in df.columns and isinstance(df[column].dtype, pd.CategoricalDtype):
            df[column] = _onto_schema_categories(df[column], values)
    return df


def _onto_schema_categories(s: pd.Series, values: tuple) -> pd.Series:
    """Recode a categorical onto the schema's value list; values outside it are appended, not lost.

    Only categories that occur are kept, so the categories are exactly the schema's list whenever the
    data holds no unknown value. Recoding touches the codes once (a take), never the text.
    """
    categories = s.cat.categories
    if not pd.api.types.is_string_dtype(categories.dtype) or len(categories) == 0:
        if len(categories) == 0:
            return s.cat.set_categories(list(values))
        return s  # a wrong type: left as it is for validation to report
    extras = set(categories) - set(values)
    if not extras and len(categories) == len(values) and list(categories) == list(values):
        return s  # already canonical (files written from canonical frames)
    if extras:  # keep only unknown values that occur: a file's dictionary may list unused ones
        counts = np.bincount(s.cat.codes.to_numpy() + 1, minlength=len(categories) + 1)[1:]
        extras &= set(categories[counts > 0])
    return s.cat.set_categories([*values, *sorted(extras)])
