"""Flat snapshot sources: one CSV row per customer with a label, described by a conf/data/*.yaml (``kind: flat``).

A flat snapshot has no time axis (Bank Marketing, Churn_Modelling): it cannot feed the point-in-time feature
blocks, only a model benchmark or a propensity model trained with stratified cross-validation. The config
says everything the loader needs, so a new CSV with a label column becomes trainable without code::

    name: churn_modelling
    kind: flat
    path: ${paths.shared_data_dir}/churn_modelling/Churn_Modelling.csv
    sep: ","
    id_column: CustomerId          # pseudonymised into customer_id, then dropped (null: row numbers are hashed)
    drop: [RowNumber, Surname]     # identifiers and personal data
    label: {column: Exited, positive: 1, name: churn}
    exclude: []                    # columns kept out of the model (leaks, ...)
    categorical: [Geography, Gender]
    rename: {}
    labels: {balance: {en: Account balance, zh: 账户余额, unit: money}}   # reason-code names and units

The file may be a plain CSV, gzip-compressed or a zip archive holding one CSV: its first bytes decide, not its name.

What :func:`load_flat_snapshot` returns: ``customer_id`` (keyed-hash pseudonym, :mod:`bankseg.data.privacy`), the
feature columns (numeric as float64, ``categorical`` as pandas ``category``), ``label_<name>`` (int8 0/1) and
``split`` ("train" for every row: the training job uses stratified CV or a stratified hold-out, not out-of-time).

Privacy, in order: the ``drop`` columns and every column whose name looks like a direct identifier are removed
first; the id column is replaced by its pseudonym; a text column that is in neither ``categorical`` nor ``drop``
nor ``exclude`` is refused (free text can hold names), and the result is checked to hold none of the dropped
or raw id columns. Logs name columns and counts, never values.
"""

from __future__ import annotations

import csv
import gzip
import io as _io
import logging
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

import numpy as np
import pandas as pd

from bankseg.data.privacy import drop_direct_identifiers, pseudonymisation_key, pseudonymise

log = logging.getLogger(__name__)

KIND = "flat"
SPLIT_VALUE = "train"
_KNOWN_KEYS = frozenset(
    {"name", "kind", "path", "sep", "id_column", "drop", "label", "exclude", "categorical", "rename",
     "encoding", "description", "source", "currency", "na_values", "registry_prefix", "labels"}
)


@dataclass(frozen=True)
class LabelSpec:
    """Which column is the label, which of its values is the positive class, and the label's name."""

    column: str
    positive: object
    name: str
    negative: object | None = None  # when given, a value that is neither positive nor negative is refused

    @property
    def output_column(self) -> str:
        return f"label_{self.name}"


@dataclass(frozen=True)
class FlatSpec:
    """A flat snapshot source (one conf/data/*.yaml with ``kind: flat``); build it with :meth:`from_dict`."""

    name: str
    path: Path
    label: LabelSpec
    sep: str = ","
    id_column: str | None = None
    drop: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    rename: Mapping[str, str] = field(default_factory=dict)
    encoding: str = "utf-8"
    na_values: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, cfg: Mapping) -> FlatSpec:
        """Check a plain config mapping against the CSV's header and return the spec.

        One ValueError lists every problem: unknown keys, a kind other than ``flat``, a missing file, and
        label, id, drop, exclude, categorical or rename columns absent from the header (or named twice).
        """
        problems: list[str] = []
        unknown = sorted(set(cfg) - _KNOWN_KEYS)
        if unknown:
            problems.append(f"unknown keys {unknown}")
        if cfg.get("kind", KIND) != KIND:
            problems.append(f"kind must be {KIND!r}, got {cfg.get('kind')!r}")
        for key in ("name", "path", "label"):
            if not cfg.get(key):
                problems.append(f"{key} is required")
        label_cfg = cfg.get("label") or {}
        if cfg.get("label") is not None and not isinstance(label_cfg, Mapping):
            problems.append("label must be a mapping {column, positive, name}")
            label_cfg = {}
        for key in ("column", "positive", "name"):
            if label_cfg and label_cfg.get(key) is None:
                problems.append(f"label.{key} is required")
        if problems:
            raise ValueError(f"flat data config {cfg.get('name')!r}: " + "; ".join(problems))

        spec = cls(
            name=str(cfg["name"]),
            path=Path(str(cfg["path"])),
            label=LabelSpec(column=str(label_cfg["column"]), positive=label_cfg["positive"],
                            name=str(label_cfg["name"]), negative=label_cfg.get("negative")),
            sep=str(cfg.get("sep", ",")),
            id_column=str(cfg["id_column"]) if cfg.get("id_column") else None,
            drop=_names(cfg.get("drop")),
            exclude=_names(cfg.get("exclude")),
            categorical=_names(cfg.get("categorical")),
            rename={str(k): str(v) for k, v in (cfg.get("rename") or {}).items()},
            encoding=str(cfg.get("encoding", "utf-8")),
            na_values=_names(cfg.get("na_values")),
        )
        spec.check_against_header()
        return spec

    def header(self) -> list[str]:
        """Column names of the CSV (its first line only); plain, gzip or zip (one CSV inside)."""
        with open_csv_text(self) as f:
            return next(csv.reader(f, delimiter=self.sep), [])

    def check_against_header(self) -> None:
        """Raise one ValueError listing every configured column the CSV lacks, or any contradiction."""
        header = self.header()
        columns = set(header)
        problems: list[str] = []
        if len(columns) != len(header):
            problems.append("the header names a column twice")
        if self.label.column not in columns:
            problems.append(f"label column {self.label.column!r} is not in the file")
        if self.id_column is not None and self.id_column not in columns:
            problems.append(f"id_column {self.id_column!r} is not in the file")
        for key, names in (("drop", self.drop), ("exclude", self.exclude), ("categorical", self.categorical),
                           ("rename", tuple(self.rename))):
            absent = [c for c in names if c not in columns]
            if absent:
                problems.append(f"{key} names columns not in the file: {absent}")
        reserved = {self.label.column, *(c for c in (self.id_column,) if c)}
        for key, names in (("drop", self.drop), ("exclude", self.exclude), ("categorical", self.categorical)):
            clash = sorted(reserved & set(names))
            if clash:
                problems.append(f"{key} must not name the label or id column: {clash}")
        gone = set(self.drop) | set(self.exclude)
        both = sorted(gone & set(self.categorical))
        if both:
            problems.append(f"columns both dropped/excluded and categorical: {both}")
        targets = list(self.rename.values())
        kept = [c for c in header if c not in gone | reserved and c not in self.rename]
        clash = sorted({t for t in targets if targets.count(t) > 1 or t in kept})
        reserved_out = {"customer_id", "split", self.label.output_column}
        bad_targets = sorted(set(targets) & (reserved_out | gone | reserved))
        if clash or bad_targets:
            problems.append(f"rename gives clashing or reserved names: {sorted(set(clash) | set(bad_targets))}")
        if problems:
            raise ValueError(f"flat data {self.name!r} ({self.path.name}): " + "; ".join(problems))

    @property
    def label_column(self) -> str:
        """The label column of the loaded frame, ``label_<name>``."""
        return self.label.output_column


def _names(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


# The first bytes of a gzip and a zip file: the file's content decides, whatever its name ends with.
_MAGIC = {b"\x1f\x8b": "gzip", b"PK\x03\x04": "zip"}


def compression_of(path: Path) -> str | None:
    """``gzip``, ``zip`` or None (plain text), from the file's first bytes."""
    with Path(path).open("rb") as handle:
        head = handle.read(4)
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)


def _zip_member(spec: FlatSpec) -> str:
    """The one file inside a zipped CSV (folders and macOS metadata aside); ValueError naming what is there."""
    with zipfile.ZipFile(spec.path) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/") and not n.startswith("__MACOSX/")]
    if len(names) != 1:
        raise ValueError(f"flat data {spec.name!r}: {spec.path.name} is a zip archive holding {len(names)} files "
                         f"{names[:10]}; it must hold exactly one CSV (or point data.path at the unzipped file)")
    return names[0]


@contextmanager
def open_csv_text(spec: FlatSpec) -> Iterator[TextIO]:
    """The CSV as text (plain, gzip or a zip holding one file), decoded with ``spec.encoding``.

    Raises ValueError for a missing file, a zip holding other than one file, and bytes that are not text in
    ``spec.encoding`` (saying which setting to change).
    """
    if not spec.path.is_file():
        raise ValueError(f"flat data {spec.name!r}: file {spec.path} does not exist")
    kind = compression_of(spec.path)
    with ExitStack() as stack:
        if kind == "gzip":
            raw: BinaryIO = stack.enter_context(gzip.open(spec.path, "rb"))
        elif kind == "zip":
            archive = stack.enter_context(zipfile.ZipFile(spec.path))
            raw = stack.enter_context(archive.open(_zip_member(spec)))
        else:
            raw = stack.enter_context(spec.path.open("rb"))
        text = stack.enter_context(_io.TextIOWrapper(raw, encoding=spec.encoding, newline=""))
        try:
            yield text
        except UnicodeDecodeError as err:
            what = f"holds {kind}-compressed bytes that are" if kind else "is"
            raise ValueError(f"flat data {spec.name!r}: {spec.path.name} {what} not {spec.encoding} text "
                             f"({err.reason} at byte {err.start}); set `encoding:` in the data config (e.g. "
                             "latin-1) or give a CSV, gzip or zip file") from None
        except gzip.BadGzipFile as err:
            raise ValueError(f"flat data {spec.name!r}: {spec.path.name} is a damaged gzip file: {err}") from None


def load_flat_snapshot(spec: FlatSpec, key: bytes | None = None) -> pd.DataFrame:
    """One row per customer: pseudonymised ``customer_id``, features, ``label_<name>`` (int8) and ``split``.

    ``key`` is the pseudonymisation key (default :func:`bankseg.data.privacy.pseudonymisation_key`). Rows keep the
    file's order. Raises ValueError for duplicate or missing ids, missing or unexpected label values, and text
    columns not declared ``categorical`` (they could be free text with personal data: declare or drop them).
    """
    spec.check_against_header()
    with open_csv_text(spec) as text:
        raw = pd.read_csv(text, sep=spec.sep, na_values=list(spec.na_values) or None, low_memory=False)
    n = len(raw)
    key = pseudonymisation_key() if key is None else key

    ids = raw[spec.id_column] if spec.id_column else pd.Series(np.arange(1, n + 1), index=raw.index)
    if spec.id_column and ids.duplicated().any():
        raise ValueError(f"flat data {spec.name!r}: id_column {spec.id_column!r} has "
                         f"{int(ids.duplicated().sum())} duplicate ids; a snapshot has one row per customer")
    customer_id = pseudonymise(ids, key)
    if len(np.unique(customer_id)) != n:
        raise ValueError(f"flat data {spec.name!r}: pseudonym collision; use another key")

    label = _label_values(raw[spec.label.column], spec)
    reserved = {spec.label.column, *(c for c in (spec.id_column,) if c)}
    features = raw.drop(columns=[*reserved, *spec.drop, *spec.exclude])
    features, flagged = drop_direct_identifiers(features)
    if flagged:
        log.warning("flat data %s: dropped columns that look like direct identifiers: %s", spec.name, flagged)
    features = _typed_features(features, spec)
    out = pd.concat(
        [
            pd.DataFrame({"customer_id": customer_id}, index=raw.index),
            features.rename(columns=dict(spec.rename)),
            pd.DataFrame({spec.label_column: label, "split": SPLIT_VALUE}, index=raw.index),
        ],
        axis=1,
    ).reset_index(drop=True)
    _assert_no_identifiers(out, spec, flagged)
    log.info("flat data %s: %d rows, %d features, %s positive rate %.4f (dropped %s)", spec.name, n,
             features.shape[1], spec.label_column, float(label.mean()) if n else float("nan"),
             [*spec.drop, *flagged, *(c for c in (spec.id_column,) if c)])
    return out


def _label_values(values: pd.Series, spec: FlatSpec) -> np.ndarray:
    """The label as int8 0/1; missing labels and values outside {positive, negative} are refused."""
    missing = values.isna().to_numpy()
    if missing.any():
        raise ValueError(f"flat data {spec.name!r}: label column {spec.label.column!r} is missing in "
                         f"{int(missing.sum())} rows, e.g. rows {np.flatnonzero(missing)[:5].tolist()}")
    positive = _matches(values, spec.label.positive)
    if spec.label.negative is not None:
        neither = ~positive & ~_matches(values, spec.label.negative)
        if neither.any():
            raise ValueError(f"flat data {spec.name!r}: {int(neither.sum())} label values are neither "
                             f"positive nor negative, e.g. rows {np.flatnonzero(neither)[:5].tolist()}")
    if not positive.any() or positive.all():
        raise ValueError(f"flat data {spec.name!r}: label {spec.label.column!r} == {spec.label.positive!r} "
                         f"in {int(positive.sum())} of {len(values)} rows; a label needs both classes")
    return positive.astype(np.int8)


def _matches(values: pd.Series, target: object) -> np.ndarray:
    """Whether each value equals ``target``, comparing numbers as numbers and text as stripped text."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not isinstance(target, str):
        return (values.to_numpy(dtype=np.float64) == float(target))
    return (values.astype("str").str.strip() == str(target).strip()).to_numpy(dtype=bool)


def _typed_features(features: pd.DataFrame, spec: FlatSpec) -> pd.DataFrame:
    """Categorical columns as ``category`` (sorted text levels), numeric as float64; other text refused."""
    undeclared = [
        c for c in features.columns
        if c not in spec.categorical and not (pd.api.types.is_numeric_dtype(features[c].dtype)
                                              or pd.api.types.is_bool_dtype(features[c].dtype))
    ]
    if undeclared:
        raise ValueError(
            f"flat data {spec.name!r}: text columns {undeclared} are not declared; list them under "
            "`categorical` (model them), `exclude` (keep them out) or `drop` (identifiers, personal data)"
        )
    typed = {}
    for col in features.columns:
        s = features[col]
        if col in spec.categorical:
            text = s.astype("str").where(s.notna())
            typed[col] = text.astype(pd.CategoricalDtype(sorted(text.dropna().unique())))
        else:
            typed[col] = s.astype(np.float64)
    return pd.DataFrame(typed, index=features.index)


def _assert_no_identifiers(out: pd.DataFrame, spec: FlatSpec, flagged: Sequence[str]) -> None:
    """Refuse (RuntimeError: a bug, not bad data) output still holding a dropped or raw id column."""
    forbidden = {*spec.drop, *flagged, *(c for c in (spec.id_column,) if c)} - {"customer_id"}
    survived = sorted(forbidden & set(map(str, out.columns)))
    if survived:
        raise RuntimeError(f"flat data {spec.name!r}: identifier columns survived loading: {survived}")
