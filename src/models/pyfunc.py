"""MLflow pyfunc wrappers that carry a fitted bankseg estimator into the registry.

The wrapper pickles the estimator itself, so loading it needs bankseg importable (as it is wherever the jobs
run); :func:`unwrap` gives the estimator back to code (the segmenter) that needs more than ``predict``.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.types import ColSpec, Schema
from pandas.api.types import is_numeric_dtype


class PropensityPyfunc(mlflow.pyfunc.PythonModel):
    """Predicts the calibrated probability of a propensity model as a one-column frame ``probability``."""

    _skip_type_hint_validation = True  # the input is checked by the explicit signature (see input_schema)

    def __init__(self, model):
        self.model = model

    def predict(self, context, model_input, params=None):
        return pd.DataFrame({"probability": np.asarray(self.model.predict_proba(model_input), dtype=float)})


class PersonaPyfunc(mlflow.pyfunc.PythonModel):
    """Assigns each row its persona id and readable name (English)."""

    _skip_type_hint_validation = True  # the input is checked by the explicit signature (see input_schema)

    def __init__(self, model):
        self.model = model

    def predict(self, context, model_input, params=None):
        ids = np.asarray(self.model.predict(model_input), dtype=int)
        names = {k: v["en"] for k, v in self.model.names_.items()}
        return pd.DataFrame({"persona_id": ids, "persona_name": pd.Series(ids).map(names).to_numpy()})


# Requirements recorded with every logged model. Listing them skips MLflow's slow inference (about 12 s a model);
# loading happens where bankseg is installed (env_manager="local"), so they document more than they install.
RUNTIME_PACKAGES = ("bankseg", "mlflow", "lightgbm", "scikit-learn", "pandas", "numpy", "pyarrow", "scipy")


def model_requirements() -> list[str]:
    """Pinned requirements of a logged bankseg model (the versions installed now)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in RUNTIME_PACKAGES:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


def to_model_input(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The model-input form of feature columns: numbers as float64 (NaN allowed), categories as text.

    MLflow's schema enforcement refuses pandas ``category`` and int-to-double conversions, so every caller of a
    registered model passes its features through this first.
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the feature table lacks {len(missing)} model input columns: {missing}")
    out = {}
    for name in columns:
        series = frame[name]
        if is_numeric_dtype(series) and not isinstance(series.dtype, pd.CategoricalDtype):
            out[name] = series.astype("float64")
        else:
            out[name] = series.astype("str").where(series.notna(), None)
    return pd.DataFrame(out, index=frame.index).reset_index(drop=True)


def masked_input_example(model_input: pd.DataFrame, n_rows: int = 2) -> pd.DataFrame:
    """An input example that holds no customer: ``n_rows`` rows of the model-input columns, every value missing.

    MLflow stores a model's input example as ``input_example.json`` beside the model, where anyone who can read
    the registry sees it; real rows there would be customers' full records. Every model input allows missing
    values (the estimators impute them), so a fully masked example still documents the columns and their types
    and still runs through ``predict`` when the signature is inferred. ``model_input`` is in
    :func:`to_model_input` form (doubles and text); only its columns and dtypes are used.
    """
    masked = {
        name: pd.Series(np.nan if is_numeric_dtype(dtype) else None, index=range(n_rows),
                        dtype="float64" if is_numeric_dtype(dtype) else "object")
        for name, dtype in model_input.dtypes.items()
    }
    return pd.DataFrame(masked, columns=list(model_input.columns))


def input_schema(example: pd.DataFrame) -> Schema:
    """An explicit input schema: every column required, doubles and strings, missing values allowed inside."""
    return Schema(
        [ColSpec("double" if is_numeric_dtype(example[c]) else "string", c) for c in example.columns]
    )


def predict_frame(pyfunc_model, frame: pd.DataFrame) -> pd.DataFrame:
    """Predict with a registered model on a feature table: its signature's columns, in model-input form."""
    columns = pyfunc_model.metadata.get_input_schema().input_names()
    return pyfunc_model.predict(to_model_input(frame, columns))


def unwrap(pyfunc_model):
    """The bankseg estimator inside a loaded pyfunc model."""
    return pyfunc_model.unwrap_python_model().model
