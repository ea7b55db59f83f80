"""engine=spark: features by bucket on Spark, the segmenter through ``mlflow.pyfunc.spark_udf``, output by Spark.

The same steps as the pandas engine: the feature blocks run per bucket inside ``groupBy(bucket).applyInPandas``
(on the folder of kept rows when validation set rows aside), the registered segmenter scores every row through
``spark_udf(env_manager="local")`` with the output struct as result type, rows missing a required output go to
the rejects (stage scoring), customers without a feature row are rejected for the reason the data gives (the
pandas engine's :func:`bankseg.scoring.score.no_feature_row_rejects`; one Spark lost has none, and the count check
fails), service-tier overrides are applied on the driver to the (few) overridden customers, drift counts are
taken per partition with ``mapInPandas`` and summed, and Spark writes the Parquet parts into the run's temporary
folder (published by :func:`bankseg.scoring.score.run_score`). Values equal the pandas engine's.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from bankseg.features.build import FeatureSettings
from bankseg.scoring.migration import drift_columns, drift_counts
from bankseg.scoring.score import (
    OUTPUT_FOLDER,
    Tally,
    customer_rejects,
    n_buckets_for,
    no_feature_row_rejects,
    read_output,
    unscored_rows,
)
from bankseg.scoring.segmenter import (
    FLOAT_COLUMNS,
    INT_COLUMNS,
    OUTPUT_COLUMNS,
    REQUIRED_OUTPUTS,
    apply_overrides,
    text_as_objects,
)

# Customers per Spark feature bucket: with 36 months of history a bucket's stacked tables hold ~500 rows per
# customer (the simulated bank: 25M rows for 50,000 customers), so 10,000 customers make a frame of ~5M rows.
BUCKET_CUSTOMERS = 10_000


def output_struct():
    """The Spark struct of the segmenter's output (the ``result_type`` of the UDF)."""
    from pyspark.sql import types as T

    def kind(column: str):
        if column in INT_COLUMNS:
            return T.LongType()
        if column in FLOAT_COLUMNS:
            return T.DoubleType()
        return T.StringType()

    return T.StructType([T.StructField(c, kind(c), True) for c in OUTPUT_COLUMNS])


def _restore_missing_text(column: str):
    """``out.<column>`` with MLflow's text for a missing value turned back into null.

    spark_udf converts each string field of a struct result with ``astype(np.str_)``, which writes a missing
    value as the text "None"; no output of the segmenter holds that text otherwise.
    """
    from pyspark.sql import functions as F

    value = F.col(f"out.{column}")
    if column in INT_COLUMNS or column in FLOAT_COLUMNS:
        return value
    return F.when(value == F.lit("None"), F.lit(None)).otherwise(value)


def feature_frame(spark, data_path: Path, as_of: pd.Timestamp, settings: FeatureSettings, n_buckets: int):
    """The lazy Spark feature table as of ``as_of`` from the folder of kept rows (validation already ran)."""
    from bankseg.features.spark import feature_table_spark_frame

    return feature_table_spark_frame(spark, data_path, [as_of], settings, n_buckets=n_buckets)


def model_input_columns(features, input_types: dict[str, str]):
    """Spark columns in model-input form: customer_id long, as_of ISO string, doubles and strings."""
    from pyspark.sql import functions as F

    columns = []
    for name, kind in input_types.items():
        if name == "as_of":
            columns.append(F.date_format(F.col("as_of"), "yyyy-MM-dd").alias("as_of"))
        elif kind == "long":
            columns.append(F.col(name).cast("long").alias(name))
        elif kind == "double":
            columns.append(F.col(name).cast("double").alias(name))
        else:
            columns.append(F.col(name).cast("string").alias(name))
    return features.select(*columns)


def count_unknown_categories(model_input, known: dict[str, tuple[str, ...]]) -> dict[str, int]:
    """Rows per text input column holding a value no model saw at training (the segmenter maps them)."""
    from pyspark.sql import functions as F

    columns = [c for c in known if c in model_input.columns]
    if not columns:
        return {}
    sums = [F.sum((F.col(c).isNotNull() & ~F.col(c).isin(list(known[c]))).cast("long")).alias(c) for c in columns]
    row = model_input.agg(*sums).collect()[0]
    return {c: int(row[c]) for c in columns if row[c]}


def score_spark(
    *,
    model_uri: str,
    segmenter,
    segmenter_version: str,
    data_path: Path,
    as_of: pd.Timestamp,
    settings: FeatureSettings,
    tmp_dir: Path,
    overrides: pd.DataFrame | None,
    customers: pd.DataFrame,
    tally: Tally,
    master: str = "local[2]",
    n_buckets: int = 1,
    input_types: dict[str, str] | None = None,
    spark=None,
) -> None:
    """Score on Spark and write ``tmp_dir/segments``; rejects, drift counts and audit go into ``tally``.

    ``customers`` (customer_id, open_date of the customers table) is the population: the customers the scored
    rows do not hold are rejected by :func:`bankseg.scoring.score.no_feature_row_rejects`, as the pandas engine
    does, so a customer Spark loses has no reason and the run's count check fails.
    """
    import mlflow
    from pyspark.sql import functions as F

    from bankseg.features.spark import get_spark

    started = time.perf_counter()
    spark = spark or get_spark(master, app_name="bankseg-score")
    input_types = input_types or model_input_types(model_uri)
    buckets = spark_buckets(spark, len(customers), n_buckets)
    features = feature_frame(spark, Path(data_path), as_of, settings, buckets)
    model_input = model_input_columns(features, input_types)
    tally.unknown_categories.update(count_unknown_categories(model_input, segmenter.known_categories))
    udf = mlflow.pyfunc.spark_udf(spark, model_uri, env_manager="local", result_type=output_struct())
    drift_cols = drift_columns(segmenter.parts.drift_reference)
    feature_cols = [c for c in drift_cols if not c.startswith("p_")]
    scored = model_input.select(
        F.struct(*[F.col(c) for c in input_types]).alias("inp"), *[F.col(c) for c in feature_cols]
    ).withColumn("out", udf(F.col("inp"))).drop("inp").persist()

    unscored = _required_missing()
    rows = scored.select(F.col("out.customer_id").alias("customer_id"), unscored.alias("unscored")).toPandas()
    tally.rejects.append(no_feature_row_rejects(customers, rows["customer_id"], as_of))
    if rows["unscored"].any():
        bad = scored.filter(unscored).select("out.*").toPandas()
        mask, reasons = unscored_rows(bad)
        tally.rejects.append(customer_rejects(bad.loc[mask, "customer_id"], "scoring", reasons))
    good = scored.filter(~unscored)
    tally.drift.append(_drift_counts(good, segmenter.parts.drift_reference, drift_cols))

    output = good.select(*[_restore_missing_text(c).alias(c) for c in OUTPUT_COLUMNS])
    if overrides is not None:
        output = _with_overrides(spark, output, overrides, segmenter.rules,
                                 customers["customer_id"].to_numpy(np.int64), tally)
    output = output.withColumn("as_of", F.to_date("as_of")).withColumn("segmenter_version", F.lit(str(segmenter_version)))
    output.write.mode("overwrite").parquet(str(tmp_dir / OUTPUT_FOLDER))
    scored.unpersist()
    tally.n_out += len(read_output(tmp_dir, ["customer_id"]))
    tally.clock("spark", started)


def spark_buckets(spark, n_customers: int, n_buckets: int) -> int:
    """Feature buckets on Spark: ``n_buckets``, at least twice the cores and at most :data:`BUCKET_CUSTOMERS` each.

    A bucket's stacked tables are one pandas frame in one Python worker, so the bucket count grows with the
    bank (the pandas engine streams transactions instead and can take far larger buckets).
    """
    return n_buckets_for(n_customers, BUCKET_CUSTOMERS, max(int(n_buckets), 2 * spark.sparkContext.defaultParallelism))


def model_input_types(model_uri: str) -> dict[str, str]:
    """The model signature's input columns as long, double or string (the Spark form of each)."""
    import mlflow

    schema = mlflow.models.get_model_info(model_uri).signature.inputs
    kinds = {spec.name: str(spec.type) for spec in schema.inputs}
    return {k: ("long" if "long" in v else "double" if "double" in v else "string") for k, v in kinds.items()}


def _required_missing():
    """True where the segmenter left a required output empty (the row goes to the rejects, stage scoring)."""
    missing = None
    for column in REQUIRED_OUTPUTS:
        cond = _restore_missing_text(column).isNull()
        missing = cond if missing is None else (missing | cond)
    return missing


def _drift_counts(good, reference: dict, drift_cols: list[str]) -> pd.DataFrame:
    """Drift bin counts of the scored rows, taken per partition with ``mapInPandas`` and summed."""
    from pyspark.sql import functions as F

    feature_cols = [c for c in drift_cols if not c.startswith("p_")]

    def count(batches):
        for pdf in batches:
            frame = pdf[feature_cols].assign(**{c: pdf[c] for c in drift_cols if c.startswith("p_")})
            yield text_as_objects(drift_counts(reference, frame))

    p_cols = [F.col(f"out.{c}").alias(c) for c in drift_cols if c.startswith("p_")]
    return good.select(*[F.col(c) for c in feature_cols], *p_cols).mapInPandas(
        count, schema="model string, kind string, variable string, bin long, n long"
    ).groupBy("model", "kind", "variable", "bin").agg(F.sum("n").alias("n")).toPandas()


def _with_overrides(spark, output, overrides: pd.DataFrame, rules, known_customer_ids: np.ndarray, tally: Tally):
    """Service-tier overrides applied on the driver to the (few) overridden customers; the audit goes to ``tally``."""
    from pyspark.sql import functions as F

    ids = [int(i) for i in overrides["customer_id"].unique()]
    touched = output.filter(F.col("customer_id").isin(ids)).toPandas()
    if not len(touched):
        return output
    new, audit = apply_overrides(touched, overrides, rules, known_customer_ids)
    tally.audit.append(audit)
    replaced = spark.createDataFrame(new[list(OUTPUT_COLUMNS)], schema=output_struct())
    return output.filter(~F.col("customer_id").isin(ids)).unionByName(replaced)
