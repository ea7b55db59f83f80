"""The Spark engine: the same block functions, run per bucket with ``groupBy("bucket").applyInPandas``.

``applyInPandas`` hands one DataFrame per group, so the five tables are stacked into one long frame
(a ``table`` column says which table a row comes from; columns another table lacks are null) and split
again inside the group. Each group is one bucket (``splitmix64(customer_id) mod n_buckets``, the pandas
engine's buckets), and inside it :func:`bankseg.features.build.build_bucket_features` runs unchanged, which
is why both engines give the same values.

Timestamps travel as ``timestamp_ntz`` with the session time zone set to UTC, so no time-zone shift can
move a transaction across an ``as_of`` boundary. PySpark 4.3 warns that pandas 3 is not fully supported;
the tests compare values with the pandas engine.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bankseg.data.io import table_path
from bankseg.data.schema import TABLES
from bankseg.features.build import (
    BLOCK_COLUMNS,
    FeatureSettings,
    bucket_of,
    build_bucket_features,
    sort_feature_table,
)
from bankseg.features.labels import LabelSettings

_PANDAS_DTYPES = {"int": "int64", "float": "float64", "datetime": "datetime64[ns]", "category": "str", "str": "str"}


def get_spark(master: str = "local[2]", app_name: str = "bankseg-features"):
    """Return the active Spark session, or start one on ``master`` (UTC session time zone, Arrow on)."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    return (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )


def _column_kind(table: str, column: str) -> str:
    return TABLES[table].column(column).kind


def _stacked_columns() -> dict[str, str]:
    """Every column of the five block tables (by name) with its schema kind; shared names share a kind."""
    kinds: dict[str, str] = {}
    for table, columns in BLOCK_COLUMNS.items():
        for column in columns:
            kind = _column_kind(table, column)
            if kinds.setdefault(column, kind) != kind:
                raise ValueError(f"column {column!r} has kinds {kinds[column]!r} and {kind!r} across tables")
    return kinds


def _spark_type(kind: str):
    from pyspark.sql import types as T

    return {
        "int": T.LongType(),
        "float": T.DoubleType(),
        "datetime": T.TimestampNTZType(),
        "category": T.StringType(),
        "str": T.StringType(),
    }[kind]


def _empty_tables() -> dict[str, pd.DataFrame]:
    return {
        name: pd.DataFrame({c: pd.Series(dtype=_PANDAS_DTYPES[_column_kind(name, c)]) for c in columns})
        for name, columns in BLOCK_COLUMNS.items()
    }


def _output_template(settings: FeatureSettings, label_settings: LabelSettings | None) -> pd.DataFrame:
    """Run the blocks on empty tables: the output's columns and dtypes, known before Spark runs."""
    return build_bucket_features(
        _empty_tables(), [pd.Timestamp("2000-01-01")], settings, label_settings, pd.Timestamp("2000-01-01")
    )


def _output_schema(template: pd.DataFrame):
    from pyspark.sql import types as T

    fields = []
    for column, dtype in template.dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
            spark_type = T.StringType()
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            spark_type = T.TimestampNTZType()
        elif dtype == np.int8:
            spark_type = T.ByteType()
        elif pd.api.types.is_integer_dtype(dtype):
            spark_type = T.LongType()
        elif pd.api.types.is_float_dtype(dtype):
            spark_type = T.DoubleType()
        else:
            raise ValueError(f"feature column {column!r} has a dtype Spark cannot carry: {dtype}")
        fields.append(T.StructField(str(column), spark_type, nullable=True))
    return T.StructType(fields)


def _load_stacked(spark, source: Path | str | Mapping[str, pd.DataFrame], customers: Sequence[int] | None):
    """One Spark DataFrame holding the five tables' block columns, a ``table`` column and nulls elsewhere."""
    from pyspark.sql import functions as F

    kinds = _stacked_columns()
    frames = []
    for name, columns in BLOCK_COLUMNS.items():
        if isinstance(source, Mapping):
            if name not in source:
                raise ValueError(f"missing table {name!r}; got {sorted(source)}")
            pdf = source[name][list(columns)].copy()
            for c in columns:
                if isinstance(pdf[c].dtype, pd.CategoricalDtype):
                    pdf[c] = pdf[c].astype("str")
            sdf = spark.createDataFrame(pdf)
        else:
            path = table_path(source, name)
            if path is None:
                raise FileNotFoundError(f"dataset folder {source}: table {name!r} is missing")
            sdf = spark.read.parquet(str(path)).select(*columns)
        selected = [F.lit(name).alias("table")]
        for column, kind in kinds.items():
            value = F.col(column) if column in columns else F.lit(None)
            selected.append(value.cast(_spark_type(kind)).alias(column))
        frames.append(sdf.select(*selected))
    stacked = frames[0]
    for frame in frames[1:]:
        stacked = stacked.unionByName(frame)
    if customers is not None:
        stacked = stacked.where(F.col("customer_id").isin([int(c) for c in np.unique(customers)]))
    return stacked


def build_feature_table_spark(
    source: Path | str | Mapping[str, pd.DataFrame],
    as_of_dates: Sequence[pd.Timestamp],
    settings: FeatureSettings,
    *,
    n_buckets: int = 1,
    customers: Sequence[int] | None = None,
    master: str = "local[2]",
    label_settings: LabelSettings | None = None,
    data_end: pd.Timestamp | None = None,
    spark=None,
) -> pd.DataFrame:
    """Return the feature table computed on Spark; same rows, columns, dtypes and values as the pandas engine.

    With ``n_buckets == 1`` the session's default parallelism x 2 buckets are used instead, so the work is
    spread over the executors. The result is collected to the driver (callers who need it distributed can
    take :func:`feature_table_spark_frame`).
    """
    spark = spark or get_spark(master)
    template = _output_template(settings, label_settings)
    frame = feature_table_spark_frame(
        spark, source, as_of_dates, settings, n_buckets=n_buckets, customers=customers,
        label_settings=label_settings, data_end=data_end, template=template,
    )
    result = frame.toPandas()
    return sort_feature_table(_restore_dtypes(result, template))


def feature_table_spark_frame(
    spark,
    source: Path | str | Mapping[str, pd.DataFrame],
    as_of_dates: Sequence[pd.Timestamp],
    settings: FeatureSettings,
    *,
    n_buckets: int = 1,
    customers: Sequence[int] | None = None,
    label_settings: LabelSettings | None = None,
    data_end: pd.Timestamp | None = None,
    template: pd.DataFrame | None = None,
    prepare_tables: Callable[[dict[str, pd.DataFrame]], dict[str, pd.DataFrame]] | None = None,
):
    """Return the (lazy) Spark DataFrame of the feature table: stacked tables, bucketed, blocks per bucket.

    ``prepare_tables`` runs on each bucket's tables before the blocks (the scoring job sets rejected rows aside
    there, as its pandas engine does).
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if n_buckets < 1:
        raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
    buckets = n_buckets if n_buckets > 1 else 2 * spark.sparkContext.defaultParallelism
    template = template if template is not None else _output_template(settings, label_settings)
    schema = _output_schema(template)
    dates = list(as_of_dates)

    @F.pandas_udf(T.LongType())
    def bucket_udf(customer_id: pd.Series) -> pd.Series:
        return pd.Series(bucket_of(customer_id.to_numpy(dtype=np.int64), buckets))

    def run_bucket(pdf: pd.DataFrame) -> pd.DataFrame:
        tables = {
            name: pdf.loc[pdf["table"] == name, list(columns)].reset_index(drop=True)
            for name, columns in BLOCK_COLUMNS.items()
        }
        if prepare_tables is not None:
            tables = prepare_tables(tables)
        out = build_bucket_features(tables, dates, settings, label_settings, data_end)
        for column in out.columns:
            if isinstance(out[column].dtype, pd.CategoricalDtype):
                out[column] = out[column].astype(object).where(out[column].notna(), None)
        return out

    spark.conf.set("spark.sql.shuffle.partitions", str(buckets))
    stacked = _load_stacked(spark, source, customers).withColumn("bucket", bucket_udf("customer_id"))
    return stacked.groupBy("bucket").applyInPandas(run_bucket, schema=schema)


def _restore_dtypes(result: pd.DataFrame, template: pd.DataFrame) -> pd.DataFrame:
    """Give the collected table the pandas engine's dtypes (categories, int widths, datetime unit)."""
    columns = {}
    for column, dtype in template.dtypes.items():
        values = result[column]
        if isinstance(dtype, pd.CategoricalDtype):
            columns[column] = pd.Categorical(values.astype(object).where(values.notna(), None),
                                             categories=dtype.categories)
        else:
            columns[column] = values.astype(dtype)
    return pd.DataFrame(columns)
