"""The segmenter: one MLflow pyfunc model that turns a feature table into every segment of every customer.

:class:`SegmenterModel` holds the champion persona model, the three champion propensity models (churn,
conversion, upgrade), the segment rules (conf/segments), the RFM bins and the persona x product lift table
learned at export time on a reference population, the band cut-offs, the reason-code groups and their scope,
and the drift reference (training-population distributions of each score and of each model's top features,
as bin edges and expected shares: PSI at scoring time needs no training data).

Input: one row per customer of ONE as_of date, the columns of :attr:`SegmenterModel.input_columns` in
model-input form (:func:`segmenter_input`): ``customer_id`` long, ``as_of`` an ISO date string, feature numbers
as double (NaN allowed), feature categories as strings (None allowed). The logged signature requires every
column, so MLflow refuses input lacking one ("Model is missing inputs [...]"); :meth:`SegmenterModel.segment`
also refuses missing columns, several dates, or repeated customers, naming them.

Output (:data:`OUTPUT_COLUMNS`, the contract the reports build on): tiers, bands and every other segment as
plain strings (English codes; Chinese labels sit in the ``*_zh`` columns or in ``SegmentRules.labels_zh``),
RFM scores and ``persona_id`` as int64, probabilities, ``clv`` and ``tier_value`` as float64, reason codes as
strings (missing outside the reason-code scope), ``model_versions`` a JSON string. ``as_of`` stays an ISO date
string here; the batch job writes it as a date.

Service-tier overrides are data of the run, not of the model: the batch job applies them to the output with
:func:`apply_overrides`, which re-derives service tier, quadrant and action for the overridden customers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.types import ColSpec, Schema
from pandas.api.types import is_numeric_dtype

from bankseg.models.explain import (
    global_importance,
    merge_correlated,
    reason_codes_for,
    resolve_reason_groups,
)
from bankseg.models.pyfunc import to_model_input
from bankseg.models.reason_text import ReasonWriter
from bankseg.segments import (
    RfmBins,
    SegmentRules,
    apply_service_overrides,
    assign_quadrant,
    assign_segments,
    fit_product_lift,
    recommend_action,
)
from bankseg.segments.rfm import rfm_bins_for

PROPENSITY_MODELS: tuple[str, ...] = ("churn", "conversion", "upgrade")
AT_TARGET_BAND = "at_target"  # conversion band of a customer already at the target: no probability
# Band of every customer for a propensity model the data source cannot support (berka: churn, upgrade): the
# segmenter holds no such model, its probability and reasons stay empty.
NOT_MODELLED_BAND = "not_modelled"
KEY_COLUMNS: tuple[str, ...] = ("customer_id", "as_of")
REASON_SUFFIXES: tuple[str, ...] = ("", "_en", "_zh")
SCOPES: tuple[str, ...] = ("all", "actionable")


def _reason_columns(model: str, k: int = 3) -> list[str]:
    return [f"{model}_reason_{i}{s}" for i in range(1, k + 1) for s in REASON_SUFFIXES]


#: The output contract, in order (``segmenter_version`` is added by the batch job).
OUTPUT_COLUMNS: tuple[str, ...] = (
    "customer_id", "as_of", "composite_tier", "service_tier", "quadrant", "value_class", "lifecycle",
    "rfm_r", "rfm_f", "rfm_m", "rfm_segment", "risk_appetite", "risk_appetite_source",
    "persona_id", "persona_name", "persona_name_zh",
    "p_churn", "churn_band", "p_conversion", "conversion_band", "p_upgrade", "upgrade_band",
    *_reason_columns("churn"), *_reason_columns("conversion"), *_reason_columns("upgrade"),
    "clv", "tier_value", "action", "action_en", "action_zh", "next_best_product", "model_versions",
)
INT_COLUMNS: tuple[str, ...] = ("customer_id", "rfm_r", "rfm_f", "rfm_m", "persona_id")
FLOAT_COLUMNS: tuple[str, ...] = ("p_churn", "p_conversion", "p_upgrade", "clv", "tier_value")
#: Output columns that must be present for a row to count as scored (else the batch job rejects it).
# A band is missing exactly when its model could not score the row: p_conversion is missing by design for a
# customer already at the target (band at_target), every p_<model> for a model not held (band not_modelled).
REQUIRED_OUTPUTS: tuple[str, ...] = (
    "composite_tier", "service_tier", "persona_id", "churn_band", "conversion_band", "upgrade_band", "action",
)


@dataclass(frozen=True)
class Bands:
    """Bands of a calibrated probability: ``cutoffs`` are inclusive lower bounds of every band after the first."""

    cutoffs: tuple[float, ...]
    names: tuple[str, ...]
    names_zh: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.cutoffs) + 1 or len(self.names_zh) != len(self.names):
            raise ValueError(f"bands: {len(self.cutoffs)} cut-offs need {len(self.cutoffs) + 1} names, got {self.names}")
        if list(self.cutoffs) != sorted(self.cutoffs):
            raise ValueError(f"bands: cut-offs must ascend, got {self.cutoffs}")

    @classmethod
    def from_dict(cls, cfg: Mapping) -> Bands:
        names = cfg["names"]
        return cls(
            cutoffs=tuple(float(c) for c in cfg["cutoffs"]),
            names=tuple(str(n["name"]) for n in names),
            names_zh=tuple(str(n.get("zh", n["name"])) for n in names),
        )

    def assign(self, p: np.ndarray) -> np.ndarray:
        """Band name per probability (object array; None where p is missing)."""
        idx = np.searchsorted(np.asarray(self.cutoffs, dtype=float), p, side="right")
        out = np.asarray(self.names, dtype=object)[np.minimum(idx, len(self.names) - 1)]
        return np.where(np.isnan(p), None, out)


@dataclass(frozen=True)
class ReasonCodeSettings:
    """Which customers get reason codes (``all`` or the ``actionable_bands``), how many, and which direction."""

    groups: Mapping[str, str]
    dictionary: Mapping[str, Mapping[str, str]]
    scope: str = "all"
    actionable_bands: tuple[str, ...] = ()
    top_k: int = 3
    direction: str = "increase"
    writer: ReasonWriter | None = None  # sentences with the customer's values; None: the group labels

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"reason_codes.scope must be one of {SCOPES}, got {self.scope!r}")
        if self.top_k != 3:
            raise ValueError(f"the output contract has 3 reason codes per model; top_k={self.top_k}")


@dataclass
class SegmenterParts:
    """Everything :class:`SegmenterModel` holds, assembled by :func:`assemble_segmenter`."""

    personas: Any
    propensity: dict[str, Any]
    rules: SegmentRules
    rfm_bins: RfmBins
    lift_table: pd.DataFrame
    bands: dict[str, Bands]
    reason_codes: dict[str, ReasonCodeSettings]
    model_versions: dict[str, str]
    input_columns: list[str]
    drift_reference: dict = field(default_factory=dict)
    data_source: str | None = None  # the data config's name the models were trained on (None: not recorded)


def text_as_objects(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its text columns as plain Python objects.

    pandas 3's pyarrow-backed ``str`` columns become chunked arrays when a pandas frame goes back to Spark (a
    UDF's result, ``mapInPandas`` output), which PySpark 4.3 and MLflow's struct conversion refuse.
    """
    text = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c]) and frame[c].dtype != object]
    if not text:
        return frame
    # missing text as None: a NaN object would reach Spark as the string "nan"
    return frame.assign(**{c: frame[c].astype(object).where(frame[c].notna(), None) for c in text})


class SegmenterModel(mlflow.pyfunc.PythonModel):
    """The assembled segmenter (see the module docstring); ``predict`` returns :data:`OUTPUT_COLUMNS`."""

    _skip_type_hint_validation = True  # the input is checked by the explicit signature, not type hints

    def __init__(self, parts: SegmenterParts):
        self.parts = parts

    @property
    def input_columns(self) -> list[str]:
        return list(self.parts.input_columns)

    @property
    def model_versions(self) -> dict[str, str]:
        return dict(self.parts.model_versions)

    @property
    def data_source(self) -> str | None:
        """The data source this segmenter serves (the data config's name), None for one exported without it."""
        return getattr(self.parts, "data_source", None)  # segmenters pickled before the field existed

    @property
    def rules(self) -> SegmentRules:
        return self.parts.rules

    def predict(self, context, model_input, params=None):
        return text_as_objects(self.segment(model_input))

    @property
    def known_categories(self) -> dict[str, tuple[str, ...]]:
        """Per text input column, the values every model reading it learned at training (others are unknown)."""
        known: dict[str, set] = {}
        for model in self.parts.propensity.values():
            for column, values in (getattr(model, "categories_", None) or {}).items():
                learned = {str(v) for v in values}
                known[column] = known[column] & learned if column in known else learned
        return {c: tuple(sorted(v)) for c, v in known.items() if c in self.parts.input_columns}

    def check_input(self, frame: pd.DataFrame) -> None:
        """Refuse input the segmenter cannot read, reason first and naming the columns (never their values).

        Missing columns, numbers given as text (or text as numbers), several as_of dates, repeated customers.
        """
        check_input(frame, self.parts.input_columns, text_columns=tuple(self.known_categories))

    def unknown_categories(self, frame: pd.DataFrame) -> dict[str, int]:
        """How many rows of each text input column hold a value no model saw at training (non-missing)."""
        counts = {}
        for column, values in self.known_categories.items():
            if column in frame.columns:
                series = frame[column]
                n = int((series.notna() & ~series.astype("str").isin(values)).sum())
                if n:
                    counts[column] = n
        return counts

    def map_unknown_categories(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame with unseen category values replaced the way training saw them (a new frame).

        A value no model learned becomes ``"unknown"`` where training knew that value (occupation, education),
        else missing (which the models learned as missing). Counted by :meth:`unknown_categories`.
        """
        changes = {}
        for column, values in self.known_categories.items():
            if column not in frame.columns:
                continue
            series = frame[column]
            unseen = series.notna() & ~series.astype("str").isin(values)
            if unseen.any():
                fill = "unknown" if "unknown" in values else None
                text = series.astype(object).where(~unseen, fill)
                changes[column] = text.astype(series.dtype) if isinstance(series.dtype, pd.StringDtype) else text
        return frame.assign(**changes) if changes else frame

    def segment(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Every segment per row of a feature table of one as_of (model-input form or the feature table itself).

        Unseen category values are mapped first (:meth:`map_unknown_categories`).
        """
        p = self.parts
        self.check_input(frame)
        frame = self.map_unknown_categories(frame).reset_index(drop=True)
        n = len(frame)
        scores = {m: np.asarray(p.propensity[m].predict_proba(frame), dtype=float) if m in p.propensity
                  else np.full(n, np.nan) for m in PROPENSITY_MODELS}
        at_target = conversion_at_target(p.propensity.get("conversion"), frame)
        scores["conversion"] = np.where(at_target, np.nan, scores["conversion"])
        persona = np.asarray(p.personas.predict(frame), dtype=np.int64) if n else np.empty(0, np.int64)
        work = frame.assign(
            p_churn=scores["churn"], p_conversion=scores["conversion"], persona_id=persona,
            as_of=pd.to_datetime(frame["as_of"]),
        )
        if n:
            seg = assign_segments(work, p.rules, rfm_bins=p.rfm_bins, lift_table=p.lift_table).segments
        else:
            seg = _empty_segments()
        out: dict[str, object] = {
            "customer_id": frame["customer_id"].to_numpy(dtype=np.int64),
            "as_of": pd.to_datetime(frame["as_of"]).dt.strftime("%Y-%m-%d").to_numpy(dtype=object),
        }
        for column in ("composite_tier", "service_tier", "quadrant", "value_class", "lifecycle"):
            out[column] = _text(seg[column])
        for column in ("rfm_r", "rfm_f", "rfm_m"):
            out[column] = seg[column].to_numpy(dtype=np.int64)
        for column in ("rfm_segment", "risk_appetite", "risk_appetite_source"):
            out[column] = _text(seg[column])
        names = p.personas.names_
        out["persona_id"] = persona
        out["persona_name"] = np.array([names.get(int(i), {}).get("en") for i in persona], dtype=object)
        out["persona_name_zh"] = np.array([names.get(int(i), {}).get("zh") for i in persona], dtype=object)
        for m in PROPENSITY_MODELS:
            out[f"p_{m}"] = scores[m]
            out[f"{m}_band"] = p.bands[m].assign(scores[m]) if m in p.propensity else np.full(n, NOT_MODELLED_BAND,
                                                                                               dtype=object)
        out["conversion_band"] = np.where(at_target, AT_TARGET_BAND, out["conversion_band"])
        for m in PROPENSITY_MODELS:
            if m in p.propensity:
                out.update(self._reasons(m, frame, out[f"{m}_band"],
                                         eligible=~at_target if m == "conversion" else None))
            else:
                out.update({column: np.full(n, None, dtype=object) for column in _reason_columns(m)})
        out["clv"] = seg["clv"].to_numpy(dtype=float)
        out["tier_value"] = seg["composite_tier_value"].to_numpy(dtype=float)
        for column in ("action", "action_en", "action_zh", "next_best_product"):
            out[column] = _text(seg[column]) if column in seg else np.full(n, None, dtype=object)
        out["model_versions"] = np.full(n, json.dumps(p.model_versions, sort_keys=True), dtype=object)
        return pd.DataFrame(out, columns=list(OUTPUT_COLUMNS))

    def _reasons(
        self, model: str, frame: pd.DataFrame, band: np.ndarray, eligible: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        settings = self.parts.reason_codes[model]
        mask = None if settings.scope == "all" else np.isin(band, list(settings.actionable_bands))
        if eligible is not None:
            mask = eligible if mask is None else mask & eligible
        codes = reason_codes_for(
            self.parts.propensity[model], frame, settings.groups, settings.dictionary, k=settings.top_k,
            direction=settings.direction, mask=mask, writer=getattr(settings, "writer", None),
        )
        return {
            f"{model}_reason_{i}{s}": _text(codes[f"reason_{i}{s}"])
            for i in range(1, settings.top_k + 1)
            for s in REASON_SUFFIXES
        }


def reason_code_settings(
    features: Sequence[str],
    rc: Mapping,
    specs: Sequence[Mapping],
    text_cfg: Mapping | None,
    reference: pd.DataFrame,
    currency: str = "CNY",
    feature_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> ReasonCodeSettings:
    """One model's reason-code settings: groups (correlated ones merged on ``reference``), labels, scope, and
    the writer of its sentences (``text_cfg`` None: no writer, the codes carry the group labels)."""
    direction = str(rc.get("direction", "increase"))
    groups, dictionary = resolve_reason_groups(features, specs, feature_labels=feature_labels)
    writer = None
    if text_cfg is not None:
        threshold = float(text_cfg.get("merge_correlated", 1.0))
        groups, dictionary = merge_correlated(groups, dictionary, reference, threshold)
        writer = ReasonWriter.build(
            features, text_cfg, reference=reference, feature_labels=feature_labels, currency=currency,
            effect=direction == "both",
        )
    return ReasonCodeSettings(
        groups=groups, dictionary=dictionary, scope=str(rc.get("scope", "all")),
        actionable_bands=tuple(rc.get("actionable_bands", ())), top_k=int(rc.get("top_k", 3)),
        direction=direction, writer=writer,
    )


def conversion_at_target(model, frame: pd.DataFrame) -> np.ndarray:
    """Rows already at the conversion target (the label's scope, carried by the model as ``label_scope_``).

    They get no conversion probability and the band ``at_target``: converting is what they have done. A model
    trained without a scope (a flat real-data source) leaves every row in scope.
    """
    scope = getattr(model, "label_scope_", None)  # None also when the segmenter holds no conversion model
    if scope is None or frame.empty:
        return np.zeros(len(frame), dtype=bool)
    return ~scope.in_scope(frame)


# ------------------------------------------------------------------------------------------------ input form
def check_input(frame: pd.DataFrame, columns: Sequence[str], text_columns: Sequence[str] | None = None) -> None:
    """Refuse input lacking columns, with wrong-typed columns, several as_of dates or repeated customers.

    Every message leads with the reason and names columns, never values from the rows (they are customers'
    data). ``text_columns`` are the input columns that hold categories; every other feature must be numeric
    (None: types are not checked).
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"segmenter input refused: {len(missing)} columns missing: {missing}")
    if text_columns is not None:
        wrong = wrong_typed_columns(frame, columns, text_columns)
        if wrong:
            raise ValueError(f"segmenter input refused: {len(wrong)} columns of the wrong type: {wrong}")
    if len(frame):
        n_dates = pd.Series(frame["as_of"]).astype("str").nunique()
        if n_dates != 1:
            raise ValueError(f"segmenter input refused: one as_of per call, got {n_dates} dates in column as_of")
        dup = frame["customer_id"].duplicated(keep=False)
        if dup.any():
            raise ValueError(f"segmenter input refused: column customer_id repeats {int(dup.sum())} rows")


def wrong_typed_columns(frame: pd.DataFrame, columns: Sequence[str], text_columns: Sequence[str]) -> list[str]:
    """Input columns whose dtype the segmenter cannot read, as ``"name (expected kind, got dtype)"``."""
    text = set(text_columns)
    wrong = []
    for column in columns:
        if column == "as_of":
            continue
        dtype = frame[column].dtype
        numeric = (is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)) \
            and not isinstance(dtype, pd.CategoricalDtype)
        if column == "customer_id" and not pd.api.types.is_integer_dtype(dtype):
            wrong.append(f"{column} (expected integer, got {dtype})")
        elif column in text and numeric:
            wrong.append(f"{column} (expected text, got {dtype})")
        elif column not in text and column != "customer_id" and not numeric:
            wrong.append(f"{column} (expected a number, got {dtype})")
    return wrong


def predict_segments(model, frame: pd.DataFrame) -> pd.DataFrame:
    """Score model-input rows with the loaded segmenter pyfunc; input it refuses raises a short ValueError.

    The segmenter's own check runs first (reason, column names, no values); MLflow's schema enforcement,
    whose message quotes the input rows, is the last line and is reported without them.
    """
    from mlflow.exceptions import MlflowException

    model.unwrap_python_model().check_input(frame)
    try:
        return model.predict(frame)
    except MlflowException as error:
        reason = str(error.message).rsplit("Error: ", 1)[-1].splitlines()[0][:300]
        raise ValueError(f"segmenter input refused by its signature: {reason}") from None


def segmenter_input(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The model-input form of a feature table: ids int64, as_of an ISO date string, features double/string."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the feature table lacks {len(missing)} segmenter input columns: {missing}")
    features = [c for c in columns if c not in KEY_COLUMNS]
    out = to_model_input(frame, features)
    out.insert(0, "customer_id", frame["customer_id"].to_numpy(dtype=np.int64))
    out.insert(1, "as_of", pd.to_datetime(frame["as_of"]).dt.strftime("%Y-%m-%d").to_numpy(dtype=object))
    return out[list(columns)]


def input_signature_schema(example: pd.DataFrame) -> Schema:
    """Every column required: customer_id long, as_of string, numbers double, text string (missing allowed)."""
    specs = []
    for column in example.columns:
        if column == "customer_id":
            specs.append(ColSpec("long", column))
        elif column == "as_of" or not is_numeric_dtype(example[column]):
            specs.append(ColSpec("string", column))
        else:
            specs.append(ColSpec("double", column))
    return Schema(specs)


def output_schema() -> Schema:
    """The output signature (types of :data:`OUTPUT_COLUMNS`)."""
    kinds = {c: "long" for c in INT_COLUMNS} | {c: "double" for c in FLOAT_COLUMNS}
    return Schema([ColSpec(kinds.get(c, "string"), c) for c in OUTPUT_COLUMNS])


def segmenter_input_columns(feature_table: pd.DataFrame) -> list[str]:
    """Input columns of a segmenter: the keys and every feature column of the table (labels and split left out)."""
    skip = ("label_", "p_", "persona_")
    return ["customer_id", "as_of"] + [
        c for c in feature_table.columns if c not in (*KEY_COLUMNS, "split") and not c.startswith(skip)
    ]


# ------------------------------------------------------------------------------------------------ assembling
def assemble_segmenter(
    *,
    personas,
    propensity: Mapping[str, Any],
    rules: SegmentRules,
    reference: pd.DataFrame,
    bands: Mapping[str, Mapping],
    reason_codes: Mapping[str, Mapping],
    reason_specs: Sequence[Mapping],
    model_versions: Mapping[str, str],
    reason_text: Mapping | None = None,
    currency: str = "CNY",
    drift_bins: int = 10,
    drift_top_features: int = 5,
    drift_sample: int = 5000,
    seed: int = 0,
    data_source: str | None = None,
) -> SegmenterModel:
    """Build the segmenter from fitted models, the rules and a reference population (one as_of).

    ``reference`` is the feature table at the latest training as_of: RFM bins (unless the rules fix them) and
    the persona x product lift table are fitted on it, and the drift reference is taken from it.
    ``bands``/``reason_codes`` are the ``bands`` and ``reason_codes`` sections of each propensity model's config
    (``reason_codes.scope``, ``actionable_bands``, ``top_k``, ``direction``); ``reason_specs`` the reason-code
    group entries (conf/model/reason_codes.yaml ``groups``); ``reason_text`` the rest of that file (``units``,
    ``comparisons``, ``merge_correlated``), which makes the codes sentences with each customer's values in
    ``currency``, compared with the reference population's typical customer. ``propensity`` may hold a subset
    of :data:`PROPENSITY_MODELS` (those the data source supports, at least one); the others score nobody.
    ``data_source`` names the data the models were trained on: the segmenter refuses to be scored on another
    source's data.
    """
    from bankseg.scoring.migration import reference_distributions

    unknown = sorted(set(propensity) - set(PROPENSITY_MODELS))
    if unknown or not propensity:
        raise ValueError(f"assemble_segmenter: propensity models must be some of {list(PROPENSITY_MODELS)}, got "
                         f"{sorted(propensity)}")
    held = [m for m in PROPENSITY_MODELS if m in propensity]
    missing = [m for m in held if m not in bands or m not in reason_codes]
    if missing:
        raise ValueError(f"assemble_segmenter: no bands or reason-code settings for {missing}")
    if reference.empty:
        raise ValueError("assemble_segmenter: the reference population is empty")
    if reference["as_of"].nunique() != 1:
        raise ValueError("assemble_segmenter: the reference population must hold one as_of")
    reference = reference.reset_index(drop=True)
    settings = {}
    for m in held:
        settings[m] = reason_code_settings(
            propensity[m].feature_names_, reason_codes[m], reason_specs, reason_text, reference, currency
        )
    band_specs = {m: Bands.from_dict(bands[m]) for m in held}
    for m, rc in settings.items():
        unknown = sorted(set(rc.actionable_bands) - set(band_specs[m].names))
        if unknown:
            raise ValueError(f"{m}: reason_codes.actionable_bands {unknown} are not bands {band_specs[m].names}")

    persona = np.asarray(personas.predict(reference), dtype=np.int64)
    lift = fit_product_lift(reference.assign(persona_id=persona), persona_column="persona_id")
    rfm_bins = rfm_bins_for(reference, rules.rfm)

    rng = np.random.default_rng(seed)
    sample = reference.iloc[np.sort(rng.permutation(len(reference))[:drift_sample])]
    scores = {m: np.asarray(propensity[m].predict_proba(reference), dtype=float) for m in held}
    top = {m: list(global_importance(propensity[m].contributions(sample)).index[:drift_top_features]) for m in held}
    drift = reference_distributions(reference, scores, top, bins=drift_bins)
    drift["as_of"] = pd.Timestamp(reference["as_of"].iloc[0]).date().isoformat()
    drift["n_customers"] = len(reference)

    parts = SegmenterParts(
        personas=personas, propensity=dict(propensity), rules=rules, rfm_bins=rfm_bins, lift_table=lift,
        bands=band_specs, reason_codes=settings, model_versions={k: str(v) for k, v in model_versions.items()},
        input_columns=segmenter_input_columns(reference), drift_reference=drift, data_source=data_source,
    )
    return SegmenterModel(parts)


# ------------------------------------------------------------------------------------------------ overrides
def apply_overrides(
    output: pd.DataFrame,
    overrides: pd.DataFrame,
    rules: SegmentRules,
    known_customer_ids: Sequence[int] | np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply service-tier overrides to segmenter output; return (new output, audit).

    Service tier comes from the active override (see :func:`bankseg.segments.apply_service_overrides`), and
    quadrant and action, which depend on it, are derived again for every row. ``known_customer_ids``: the
    whole bank's ids when scoring in chunks (overrides for customers of other chunks are then left alone).
    """
    if output.empty:
        return output.copy(), pd.DataFrame()
    as_of = pd.Timestamp(output["as_of"].iloc[0])
    tiers = rules.composite_tier
    composite = pd.Series(pd.Categorical(output["composite_tier"], dtype=tiers.dtype), index=output.index)
    rule_service = pd.Series(pd.Categorical(output["service_tier"], dtype=tiers.dtype), index=output.index)
    ids = pd.Series(output["customer_id"].to_numpy(dtype=np.int64), index=output.index)
    service, audit = apply_service_overrides(
        ids, rule_service, overrides, as_of, tiers, rules.service_tier, known_customer_ids
    )
    new = output.copy()

    def replace(column: str, values: pd.Series) -> None:
        # keep the column's dtype (object from the pyfunc, str after a Parquet round trip)
        new[column] = pd.Series(_text(values), index=new.index).astype(output[column].dtype)

    replace("service_tier", service)
    replace("quadrant", assign_quadrant(composite, service, tiers, rules.quadrant, output["p_conversion"]))
    action = recommend_action(new, rules.playbook)
    for column in ("action", "action_en", "action_zh"):
        replace(column, action[column])
    return new, audit


# ------------------------------------------------------------------------------------------------ helpers
def _text(values) -> np.ndarray:
    """Any categorical / str column as an object array of Python strings with None for missing."""
    series = pd.Series(values)
    out = series.astype(object).to_numpy()
    return np.where(series.isna().to_numpy(), None, out).astype(object)


def _empty_segments() -> pd.DataFrame:
    columns = [
        "composite_tier", "service_tier", "quadrant", "value_class", "lifecycle", "rfm_r", "rfm_f", "rfm_m",
        "rfm_segment", "risk_appetite", "risk_appetite_source", "clv", "composite_tier_value", "action",
        "action_en", "action_zh", "next_best_product",
    ]
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
