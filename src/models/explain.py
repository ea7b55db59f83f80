"""Reason codes and importance from a propensity model's exact SHAP contributions
(:meth:`PropensityModel.contributions`: the TreeSHAP pattern cache, equal to LightGBM ``pred_contrib``).

Contributions are in raw-margin (log-odds) space, one column per model feature plus ``bias``; each row sums to the
model's raw margin (:meth:`bankseg.models.propensity.PropensityModel.contributions`). Raw features are grouped into
*business features* (all ``txn_channel_share_*`` -> "channel mix", ``bal_aum_adb_{1,3,6,12}m`` -> "AUM level") by
ordered regex patterns from config (``conf/model/reason_codes.yaml``), so a new window or product maps without code.
Summing SHAP values within a group is exact: the group's contribution is the sum of its members', and row sums
are unchanged.

A reason code is a business-feature id; its readable labels (``en``, ``zh``) come from a dictionary
``{code: {"en": ..., "zh": ...}}`` built by :func:`resolve_reason_groups`.

Cost: contributions are exact TreeSHAP, about trees x leaves x depth^2 per row, orders of magnitude dearer than
``predict`` (STACK.md). :func:`reason_codes_for` computes them only for the rows in ``mask`` (the actionable
bands when the configured scope is ``actionable``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bankseg.features.dictionary import describe_feature
from bankseg.models.propensity import BIAS_COLUMN

DIRECTIONS = ("increase", "both")


def resolve_reason_groups(
    features: Sequence[str],
    specs: Sequence[Mapping],
    feature_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Map features to business features and label every code: returns ``(groups, dictionary)``.

    ``specs`` are the ordered entries of ``reason_codes.yaml`` ``groups``: ``{"id", "pattern", "en", "zh"}``,
    ``pattern`` a regex matched at the start of the feature name (``re.match``); the first matching spec wins.
    A feature no pattern matches is its own business feature, labelled from ``feature_labels``
    (``{feature: {"en", "zh"}}``) when given, else from the feature dictionary
    (:func:`bankseg.features.dictionary.describe_feature`), else by its own name.
    """
    compiled = []
    for spec in specs:
        missing = [k for k in ("id", "pattern", "en", "zh") if k not in spec]
        if missing:
            raise ValueError(f"reason-code group {dict(spec)} lacks {missing}")
        try:
            compiled.append((re.compile(spec["pattern"]), spec))
        except re.error as err:
            raise ValueError(f"reason-code group {spec['id']!r}: bad pattern {spec['pattern']!r}: {err}") from err
    ids = [spec["id"] for _, spec in compiled]
    # a group no feature matches groups nothing: its id may be a flat source's own column name (``age``)
    used = {spec["id"] for pattern, spec in compiled if any(pattern.match(f) for f in features)}
    clash = sorted({i for i in ids if ids.count(i) > 1} | (used & set(features)))
    if clash:
        raise ValueError(f"reason-code group ids must be unique and differ from feature names: {clash}")
    labels = feature_labels if feature_labels is not None else _dictionary_labels(features)
    groups: dict[str, str] = {}
    dictionary: dict[str, dict[str, str]] = {}
    for feature in features:
        spec = next((s for pattern, s in compiled if pattern.match(feature)), None)
        if spec is not None:
            groups[feature] = spec["id"]
            dictionary[spec["id"]] = {"en": spec["en"], "zh": spec["zh"]}
        else:
            groups[feature] = feature
            own = labels.get(feature, {})
            dictionary[feature] = {"en": own.get("en", feature), "zh": own.get("zh", own.get("en", feature))}
    return groups, dictionary


def aggregate_contributions(contrib: pd.DataFrame, groups: Mapping[str, str]) -> pd.DataFrame:
    """Sum contribution columns into business features; row sums (bias included) are preserved.

    Columns are the groups in order of their first member in ``contrib``, then ``bias`` (passed through). A
    feature absent from ``groups`` stays a group of its own; entries of ``groups`` for features the frame lacks
    are ignored.
    """
    features = [c for c in contrib.columns if c != BIAS_COLUMN]
    codes = [groups.get(c, c) for c in features]
    into_bias = [f for f, g in zip(features, codes, strict=True) if g == BIAS_COLUMN]
    if into_bias:
        raise ValueError(f"no feature may be grouped into {BIAS_COLUMN!r}: {into_bias}")
    unique, first = np.unique(np.array(codes, dtype=object), return_index=True)
    order_of_groups = unique[np.argsort(first)]
    position = {g: i for i, g in enumerate(order_of_groups)}
    group_of_col = np.array([position[g] for g in codes], dtype=np.int64)
    # Sort the columns by group, then one reduceat over the row axis sums each group's block of columns.
    col_order = np.argsort(group_of_col, kind="stable")
    values = contrib[features].to_numpy(dtype=np.float64)[:, col_order]
    starts = np.flatnonzero(np.r_[True, np.diff(group_of_col[col_order]) != 0])
    summed = np.add.reduceat(values, starts, axis=1) if len(features) else values
    out = pd.DataFrame(summed, columns=list(order_of_groups), index=contrib.index)
    if BIAS_COLUMN in contrib.columns:
        out[BIAS_COLUMN] = contrib[BIAS_COLUMN].to_numpy(dtype=np.float64)
    return out


def top_reason_codes(
    contrib: pd.DataFrame,
    k: int = 3,
    direction: str = "increase",
    dictionary: Mapping[str, Mapping[str, str]] | None = None,
) -> pd.DataFrame:
    """The ``k`` largest contributions per row as reason codes, vectorised (``np.argpartition``).

    ``direction="increase"``: the features pushing the score up, largest positive contribution first; a row with
    fewer than ``k`` positive contributions gets missing codes in the remaining slots. ``"both"``: largest
    absolute contribution first, signed value kept. ``bias`` is never a reason. Columns, for i in 1..k:
    ``reason_i`` (code), ``reason_i_en``, ``reason_i_zh`` (labels from ``dictionary``; the code when it has no
    entry), ``reason_i_value`` (contribution, raw-margin units). The index is ``contrib``'s.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    codes = np.array([c for c in contrib.columns if c != BIAS_COLUMN], dtype=object)
    values = contrib[list(codes)].to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        rows = contrib.index[np.isnan(values).any(axis=1)][:10].tolist()
        raise ValueError(f"contributions hold NaN (first index labels: {rows})")
    n_rows, n_codes = values.shape
    kk = min(k, n_codes)
    score = values if direction == "increase" else np.abs(values)
    if kk < n_codes:
        top = np.argpartition(-score, kk - 1, axis=1)[:, :kk]
    else:
        top = np.broadcast_to(np.arange(n_codes), (n_rows, n_codes))
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(score, top, axis=1), axis=1, kind="stable"), axis=1)
    top_values = np.take_along_axis(values, top, axis=1)
    present = np.take_along_axis(score, top, axis=1) > 0

    labels = dictionary or {}
    en = np.array([labels.get(c, {}).get("en", c) for c in codes], dtype=object)
    zh = np.array([labels.get(c, {}).get("zh", c) for c in codes], dtype=object)
    columns: dict[str, object] = {}
    for i in range(k):
        if i < kk:
            idx, ok = top[:, i], present[:, i]
            columns[f"reason_{i + 1}"] = _str_column(codes[idx], ok)
            columns[f"reason_{i + 1}_en"] = _str_column(en[idx], ok)
            columns[f"reason_{i + 1}_zh"] = _str_column(zh[idx], ok)
            columns[f"reason_{i + 1}_value"] = np.where(ok, top_values[:, i], np.nan)
        else:
            empty = np.zeros(n_rows, dtype=bool)
            for suffix in ("", "_en", "_zh"):
                columns[f"reason_{i + 1}{suffix}"] = _str_column(np.full(n_rows, "", dtype=object), empty)
            columns[f"reason_{i + 1}_value"] = np.full(n_rows, np.nan)
    return pd.DataFrame(columns, index=contrib.index)


def global_importance(contrib: pd.DataFrame) -> pd.Series:
    """Mean absolute contribution per column (``bias`` excluded), largest first."""
    features = [c for c in contrib.columns if c != BIAS_COLUMN]
    values = np.abs(contrib[features].to_numpy(dtype=np.float64)).mean(axis=0)
    return pd.Series(values, index=features, name="mean_abs_shap").sort_values(ascending=False, kind="stable")


def importance_by_group(contrib: pd.DataFrame, group_labels) -> pd.DataFrame:
    """Mean absolute contribution per column within each group (e.g. persona): features x groups.

    ``group_labels`` is one label per row (a Series aligned on ``contrib``'s index, or an array in row order);
    a missing label is refused. Rows are ordered by global importance, columns by sorted group label.
    """
    if isinstance(group_labels, pd.Series):
        labels = group_labels.reindex(contrib.index)
    else:
        labels = pd.Series(np.asarray(group_labels), index=contrib.index)
        if len(labels) != len(contrib):
            raise ValueError(f"group_labels has {len(labels)} values for {len(contrib)} rows")
    if labels.isna().any():
        rows = contrib.index[labels.isna().to_numpy()][:10].tolist()
        raise ValueError(f"{int(labels.isna().sum())} rows have no group label (first index labels: {rows})")
    order = global_importance(contrib).index
    table = contrib[list(order)].abs().groupby(labels.to_numpy(), sort=True).mean()
    table.index.name = labels.name or "group"
    return table.T.rename_axis("feature")


def reason_codes_for(
    model,
    frame: pd.DataFrame,
    groups: Mapping[str, str],
    dictionary: Mapping[str, Mapping[str, str]] | None = None,
    k: int = 3,
    direction: str = "increase",
    mask=None,
    writer=None,
) -> pd.DataFrame:
    """Top-``k`` business reason codes for the rows of ``frame`` selected by ``mask`` (all rows when None).

    Contributions, the expensive step, are computed for the selected rows only; the other rows get missing
    codes. The result has ``frame``'s index and the columns of :func:`top_reason_codes`; with a ``writer``
    (:class:`bankseg.models.reason_text.ReasonWriter`) ``reason_i_en`` / ``reason_i_zh`` are sentences about
    the row's value of the reason's representative feature (:func:`representative_features`) instead of the
    group's label, and ``reason_i_feature`` names that feature.
    """
    if mask is None:
        selected = frame
    else:
        mask = np.asarray(mask, dtype=bool)
        if len(mask) != len(frame):
            raise ValueError(f"mask has {len(mask)} values for {len(frame)} rows")
        selected = frame.loc[mask]
    if len(selected):
        contrib = model.contributions(selected)
    else:
        contrib = pd.DataFrame(columns=[*model.feature_names_, BIAS_COLUMN], dtype=np.float64)
    codes = top_reason_codes(aggregate_contributions(contrib, groups), k=k, direction=direction, dictionary=dictionary)
    if writer is not None:
        codes = write_reasons(codes, contrib, selected, groups, k, direction, writer)
    return codes.reindex(frame.index) if mask is not None else codes


def representative_features(
    contrib: pd.DataFrame, groups: Mapping[str, str], codes: pd.Series, direction: str = "increase"
) -> np.ndarray:
    """Per row, the member of the reason's group that pushes the score hardest the configured way.

    ``codes`` holds one reason code per row (missing: no reason; the result is None there). ``increase``: the
    member with the largest contribution; ``both``: the largest contribution of the group's sign.
    """
    out = np.full(len(codes), None, dtype=object)
    code_values = codes.to_numpy(dtype=object, na_value=None)
    members: dict[str, list[str]] = {}
    for feature in contrib.columns:
        if feature != BIAS_COLUMN:
            members.setdefault(groups.get(feature, feature), []).append(feature)
    for code in pd.unique(code_values[pd.notna(code_values)]):
        rows = np.flatnonzero(code_values == code)
        names = members[code]
        values = contrib[names].to_numpy(dtype=np.float64)[rows]
        if direction == "both":
            values = values * np.sign(values.sum(axis=1, keepdims=True) + 0.0)
        out[rows] = np.asarray(names, dtype=object)[np.argmax(values, axis=1)]
    return out


def merge_correlated(
    groups: Mapping[str, str],
    dictionary: Mapping[str, Mapping[str, str]],
    reference: pd.DataFrame,
    threshold: float,
    max_rows: int = 20_000,
    seed: int = 0,
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Merge business features whose members move together, so one fact does not fill every reason slot.

    Average linkage on absolute Spearman correlation over ``reference`` (numeric features only; at most
    ``max_rows`` rows, seeded): the two groups whose members correlate most on average (over every pair across
    them) merge while that average is at least ``threshold``; a chain of pairwise links does not merge unrelated
    groups. A merged group's id joins the ids in their order with ``+`` and its labels with `` / ``; its
    contribution is its members' sum, so row sums do not change. ``threshold`` >= 1 merges nothing.
    """
    numeric = [f for f in groups if f in reference.columns and pd.api.types.is_numeric_dtype(reference[f].dtype)]
    clusters = {g: [g] for g in dict.fromkeys(groups.values())}
    if threshold < 1 and len(numeric) >= 2:
        sample = reference[numeric]
        if len(sample) > max_rows:
            sample = sample.iloc[np.sort(np.random.default_rng(seed).permutation(len(sample))[:max_rows])]
        corr = np.abs(np.nan_to_num(sample.rank(na_option="keep").corr(min_periods=30).to_numpy()))
        _merge_by_average_linkage(clusters, corr, [groups[f] for f in numeric], threshold)
    merged_id = {g: "+".join(members) for members in clusters.values() for g in members}
    new_dictionary = {
        merged_id[members[0]]: {
            lang: " / ".join(dictionary.get(g, {}).get(lang, g) for g in members) for lang in ("en", "zh")
        }
        for members in clusters.values()
    }
    return {f: merged_id[g] for f, g in groups.items()}, new_dictionary


def _merge_by_average_linkage(clusters: dict[str, list[str]], corr: np.ndarray, group_of: list[str],
                              threshold: float) -> None:
    """Merge ``clusters`` (first group id -> member group ids, in config order) in place; ``corr`` is feature x
    feature over the features whose groups are ``group_of``."""
    group_of = np.asarray(group_of, dtype=object)
    while True:
        keys = list(clusters)
        index = [np.flatnonzero(np.isin(group_of, clusters[k])) for k in keys]
        best, pair = threshold, None
        for a in range(len(keys)):
            for b in range(a + 1, len(keys)):
                if len(index[a]) and len(index[b]):
                    linkage = corr[np.ix_(index[a], index[b])].mean()
                    if linkage >= best:
                        best, pair = linkage, (keys[a], keys[b])
        if pair is None:
            return
        clusters[pair[0]].extend(clusters.pop(pair[1]))


def write_reasons(codes, contrib, frame, groups, k, direction, writer) -> pd.DataFrame:
    """Replace the label columns of ``codes`` (:func:`top_reason_codes` of ``contrib`` grouped by ``groups``) by
    the writer's sentences about ``frame``'s values (row-aligned with ``contrib``); add ``reason_i_feature``."""
    codes = codes.copy()
    for i in range(1, k + 1):
        if codes[f"reason_{i}"].isna().all():
            codes[f"reason_{i}_feature"] = codes[f"reason_{i}"]
            continue
        feature = representative_features(contrib, groups, codes[f"reason_{i}"], direction)
        en, zh = writer.write(feature, frame, sign=np.sign(codes[f"reason_{i}_value"].to_numpy()))
        codes[f"reason_{i}_en"] = _str_column(en, pd.notna(en))
        codes[f"reason_{i}_zh"] = _str_column(zh, pd.notna(zh))
        codes[f"reason_{i}_feature"] = _str_column(feature, pd.notna(feature))
    return codes


def _dictionary_labels(features: Sequence[str]) -> dict[str, dict[str, str]]:
    """Readable names of the features the feature dictionary knows (the others are left out)."""
    labels = {}
    for feature in features:
        try:
            described = describe_feature(feature)
        except ValueError:
            continue
        labels[feature] = {"en": described.name_en, "zh": described.name_zh}
    return labels


def _str_column(values: np.ndarray, present: np.ndarray):
    """A pandas ``str`` array holding ``values`` where ``present`` and missing elsewhere."""
    return pd.array(np.where(present, values, None), dtype="str")
