"""The segment profile report for business users: who is in each tier and persona, what they hold, what to offer.

Input is a scoring run's output (``segments.parquet``, one row per customer; the columns of the scoring
contract: composite_tier, service_tier, quadrant, value_class, lifecycle, rfm_*, risk_appetite, persona_*,
p_* and *_band, clv, tier_value, action*, next_best_product, model_versions), optionally its ``summary.json``,
a feature table for the persona cards (behaviour and ``hold_has_*`` holdings) and an earlier run's segments for
the migration matrices.

Every label shows the English name with the Chinese term beside it ("Gold 黄金"): the Chinese comes from the
segment rules (``SegmentRules.labels_zh()``) and the persona names the segmenter wrote. Plots keep English
labels (see :mod:`bankseg.reports.plots`); the tables beside them carry both languages. No customer id is
shown anywhere: every table is an aggregate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bankseg.reports import html as h
from bankseg.reports import plots
from bankseg.reports.model_report import feature_label

REQUIRED_COLUMNS: tuple[str, ...] = (
    "customer_id", "as_of", "composite_tier", "service_tier", "quadrant", "value_class", "lifecycle",
    "rfm_segment", "risk_appetite", "persona_id", "persona_name", "clv", "tier_value", "action",
    "next_best_product",
)
# Segment columns whose order and Chinese labels come from the rules' labels_zh().
LABELLED = ("composite_tier", "service_tier", "quadrant", "value_class", "lifecycle", "rfm_segment",
            "risk_appetite", "action")
BANDS = ("churn", "conversion", "upgrade")
MIGRATION_COLUMNS = (("composite_tier", "Composite tier"), ("persona", "Persona"), ("quadrant", "Quadrant"),
                     ("value_class", "Value class"), ("lifecycle", "Lifecycle stage"))
NEW, LEFT = "(new customer)", "(left)"
MIN_ABS_Z = 0.25  # persona cards list profile gaps at least this many standard deviations wide

SECTIONS: tuple[tuple[str, str], ...] = (
    ("overview", "Overview of this scoring run"),
    ("tiers", "Composite and service tiers: how many customers, how much value"),
    ("tier-grid", "Composite x service tier grid (5 x 5)"),
    ("quadrants", "Quadrants: value against potential"),
    ("value-classes", "Value classes"),
    ("personas", "Persona cards: who they are, what they hold, what to offer"),
    ("pareto", "Pareto curve: how concentrated value is"),
    ("rfm", "RFM segments: recency, frequency, monetary value"),
    ("lifecycle", "Lifecycle stages"),
    ("risk-appetite", "Risk appetite"),
    ("propensity", "Propensity bands: churn, conversion, upgrade"),
    ("clv", "Customer lifetime value by segment"),
    ("actions", "Recommended actions and next-best products"),
    ("migration", "Migration since the previous run"),
)


@dataclass(frozen=True)
class SegmentReportSettings:
    """How the segment report is built (``conf/reports/default.yaml`` ``segments``)."""

    profile_features: tuple[str, ...] = ("cust_age", "bal_aum_adb_3m", "txn_count_3m", "hold_n_products")
    distinguishing_features: int = 5
    top_products: int = 4
    top_actions: int = 3
    feature_sample_size: int = 50_000
    value_column: str = "tier_value"
    random_state: int = 0

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> SegmentReportSettings:
        unknown = sorted(set(cfg) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"segment report settings: unknown keys {unknown}")
        kwargs = dict(cfg)
        if kwargs.get("profile_features") is not None:
            kwargs["profile_features"] = tuple(kwargs["profile_features"])
        return cls(**kwargs)


@dataclass
class ScoringRun:
    """One scoring run's output as the report reads it."""

    segments: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    features: pd.DataFrame | None = None
    migration_tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    name: str = ""


# ------------------------------------------------------------------------------------------------- labels
def english(code: object) -> str:
    """An English label from a stable code: ``potential_high`` -> ``Potential high``."""
    text = str(code).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def bilingual(column: str, code: object, labels_zh: Mapping[str, Mapping[str, str]]) -> str:
    """``Gold 黄金``: the English label with the Chinese term beside it (when the rules have one)."""
    if code is None or (isinstance(code, float) and np.isnan(code)) or code is pd.NA:
        return "(missing)"
    zh = labels_zh.get(column, {}).get(str(code), "")
    return f"{english(code)} {zh}".strip()


def category_order(column: str, values: pd.Series, labels_zh: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The configured order of a segment column's codes, then any other code seen (sorted)."""
    configured = list(labels_zh.get(column, {}))
    seen = [str(v) for v in pd.unique(values.dropna().astype("str"))]
    return configured + sorted(set(seen) - set(configured))


def persona_labels(segments: pd.DataFrame) -> pd.Series:
    """``"3 Young digital natives 年轻数字化客群"`` per persona id (from the names the segmenter wrote)."""
    columns = ["persona_id", "persona_name"] + (["persona_name_zh"] if "persona_name_zh" in segments else [])
    names = segments[columns].drop_duplicates("persona_id").set_index("persona_id").sort_index()
    zh = names["persona_name_zh"].fillna("") if "persona_name_zh" in names else ""
    return (names.index.astype(str) + " " + names["persona_name"].astype(str) + " " + zh).str.strip()


# ---------------------------------------------------------------------------------------------- tables
def check_segments(segments: pd.DataFrame) -> None:
    """Refuse a scoring output that lacks contract columns or repeats a customer (naming what is wrong)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in segments.columns]
    if missing:
        raise ValueError(f"segments output lacks columns {missing}")
    if segments.empty:
        raise ValueError("segments output has no rows")
    dup = segments["customer_id"].duplicated()
    if dup.any():
        raise ValueError(f"segments output repeats {int(dup.sum())} customer ids (rows {np.flatnonzero(dup)[:5].tolist()})")


def distribution(segments: pd.DataFrame, column: str, labels_zh: Mapping[str, Mapping[str, str]],
                 value: str | None = "tier_value") -> pd.DataFrame:
    """Customers per category in the configured order: code, label, customers, share, and value sums/shares."""
    order = category_order(column, segments[column], labels_zh)
    codes = segments[column].astype("str")
    counts = codes.value_counts().reindex(order, fill_value=0)
    table = pd.DataFrame({"code": order, "segment": [bilingual(column, c, labels_zh) for c in order],
                          "customers": counts.to_numpy(dtype=np.int64)})
    table["share"] = table["customers"] / max(int(table["customers"].sum()), 1)
    if value is not None and value in segments:
        v = pd.to_numeric(segments[value], errors="coerce")
        sums = v.groupby(codes.to_numpy()).sum().reindex(order, fill_value=0.0)
        table[f"{value} total"] = sums.to_numpy()
        total = float(v.sum())
        table[f"{value} share"] = sums.to_numpy() / total if total else np.nan
        table[f"mean {value}"] = np.where(table["customers"] > 0, sums.to_numpy() / table["customers"].clip(lower=1),
                                          np.nan)
    return table


def migration_matrix(previous: pd.Series, current: pd.Series, order: Sequence[str]) -> pd.DataFrame:
    """Customers moving from each previous category (rows) to each current one (columns).

    ``previous`` and ``current`` are indexed by customer_id. A customer only in the current run comes from
    ``(new customer)``; one only in the previous run goes to ``(left)``.
    """
    ids = previous.index.union(current.index)
    before = previous.astype("str").reindex(ids).fillna(NEW)
    after = current.astype("str").reindex(ids).fillna(LEFT)
    rows = [c for c in order if c in set(before)] + sorted(set(before) - set(order) - {NEW}) + (
        [NEW] if (before == NEW).any() else [])
    cols = [c for c in order if c in set(after)] + sorted(set(after) - set(order) - {LEFT}) + (
        [LEFT] if (after == LEFT).any() else [])
    matrix = pd.crosstab(before.to_numpy(), after.to_numpy())
    return matrix.reindex(index=rows, columns=cols, fill_value=0).rename_axis(index="previous", columns="current")


# ----------------------------------------------------------------------------------------------- report
def segment_report(run: ScoringRun, labels_zh: Mapping[str, Mapping[str, str]], settings: SegmentReportSettings,
                   *, tier_names: Sequence[str] | None = None, previous: pd.DataFrame | None = None,
                   top_share: float = 0.2, n_pareto_groups: int = 10) -> h.Report:
    """The segment profile report as a :class:`~bankseg.reports.html.Report`.

    ``labels_zh`` is ``SegmentRules.labels_zh()`` (order and Chinese labels); ``tier_names`` the composite tier
    levels low to high (the grid's axes; default: the labels' order); ``previous`` an earlier run's segments.
    """
    seg = run.segments
    check_segments(seg)
    tiers = list(tier_names) if tier_names is not None else list(labels_zh.get("composite_tier", {}))
    as_of = pd.to_datetime(seg["as_of"]).dropna()
    as_of_text = ", ".join(sorted({d.date().isoformat() for d in as_of.unique()})) or "unknown"
    report = h.Report(
        title="Customer segment profile report 客户分层分群报告",
        subtitle=f"As of {as_of_text} · {len(seg):,} customers" + (f" · run {run.name}" if run.name else ""),
    )
    titles = dict(SECTIONS)
    value = settings.value_column if settings.value_column in seg else "tier_value"

    report.add(h.Section("overview", titles["overview"],
                         "The run's date, size and the model versions behind the scores; every later section is "
                         "a breakdown of these customers.", tuple(_overview(run, as_of_text))))

    # ---- tiers
    composite = distribution(seg, "composite_tier", labels_zh, value)
    service = distribution(seg, "service_tier", labels_zh, value)
    report.add(h.Section(
        "tiers", titles["tiers"],
        "Each bar counts the customers in a tier; the table adds each tier's share of customers and of total "
        f"value ({value}: 3-month average daily AUM plus the configured share of loans). Tiers run from low to high.",
        (h.figure(plots.count_bars(composite.set_index("code")["customers"].rename(index=english),
                                   "Customers by composite tier"), "Customers by composite tier"),
         _dist_table(composite, "Composite tier 综合等级", value, "composite-table"),
         _dist_table(service, "Service tier 服务等级", value, "service-table"))))

    # ---- grid
    report.add(h.Section(
        "tier-grid", titles["tier-grid"],
        "Rows are the composite tier earned from balances, columns the service tier actually given. The diagonal "
        "is the rule; cells off it are manual overrides (above the diagonal: served above the tier earned).",
        tuple(_tier_grid(seg, tiers, labels_zh))))

    # ---- quadrants, value classes
    report.add(h.Section(
        "quadrants", titles["quadrants"],
        "Value comes from the composite tier, potential from the service tier and the predicted conversion "
        "propensity: key customers are high on both, ordinary customers low on both.",
        tuple(_segment_blocks(seg, "quadrant", "Quadrant 四象限", labels_zh, value))))
    report.add(h.Section(
        "value-classes", titles["value-classes"],
        "Classes follow rules over tier, propensities, dormancy and credit, checked in order: high, unsuitable, "
        "potential high, medium, low.",
        tuple(_segment_blocks(seg, "value_class", "Value class 客户价值分类", labels_zh, value))))

    # ---- personas
    report.add(h.Section(
        "personas", titles["personas"],
        "One card per behavioural persona: its size, the features where it differs most from the whole book "
        "(in standard deviations), the products it holds more than average (lift > 1), and what to offer.",
        tuple(_persona_cards(run, settings, labels_zh))))

    # ---- pareto
    report.add(h.Section(
        "pareto", titles["pareto"],
        "Customers are ranked from the highest value down; the curve shows what share of total value the top X% "
        "of customers hold. The further it bows above the diagonal, the more value is concentrated.",
        tuple(_pareto(seg, value, top_share, n_pareto_groups))))

    # ---- rfm, lifecycle, risk
    rfm_blocks = _segment_blocks(seg, "rfm_segment", "RFM segment RFM客群", labels_zh, value)
    if {"rfm_r", "rfm_f"} <= set(seg.columns):
        grid = pd.crosstab(seg["rfm_r"], seg["rfm_f"]).sort_index(ascending=False)
        rfm_blocks.append(h.figure(plots.heatmap(grid, "Customers by recency (R) and frequency (F) score",
                                                 fmt="{:,.0f}", xlabel="F score (5 = most frequent)",
                                                 ylabel="R score (5 = most recent)"), "RFM score grid"))
    report.add(h.Section(
        "rfm", titles["rfm"],
        "Scores 1-5 (5 best) for how recently and how often customers transact and how much; named segments "
        "group the score cells (champions score high on all three, lost customers low on recency and frequency).",
        tuple(rfm_blocks)))
    report.add(h.Section(
        "lifecycle", titles["lifecycle"],
        "Stage of the relationship: new (recently opened), growth, mature, declining (balances falling) and "
        "dormant (no transactions or logins for months).",
        tuple(_segment_blocks(seg, "lifecycle", "Lifecycle stage 客户生命周期", labels_zh, value))))
    risk_blocks = _segment_blocks(seg, "risk_appetite", "Risk appetite 风险偏好", labels_zh, value)
    if "risk_appetite_source" in seg:
        source = seg["risk_appetite_source"].astype("str").value_counts().rename_axis("source").reset_index(
            name="customers")
        risk_blocks.append(h.table(source, caption="Where the risk appetite came from (questionnaire or inferred "
                                                   "from holdings)", table_id="risk-source-table"))
    report.add(h.Section(
        "risk-appetite", titles["risk-appetite"],
        "From the risk questionnaire where the customer answered one, otherwise inferred from what they hold "
        "and their age; conservative customers should be offered capital-protected products.",
        tuple(risk_blocks)))

    # ---- propensity
    report.add(h.Section(
        "propensity", titles["propensity"],
        "Customers per probability band of each model (low, medium, high); the mean probability shows how risky "
        "or promising the band is on average.", tuple(_propensity(seg))))

    # ---- clv
    report.add(h.Section(
        "clv", titles["clv"],
        "Customer lifetime value is the discounted margin on balances and loans over the horizon, scaled by the "
        "predicted chance of staying. Boxes span the middle half of customers; whiskers the 5th-95th percentile.",
        tuple(_clv(seg, labels_zh))))

    # ---- actions
    report.add(h.Section(
        "actions", titles["actions"],
        "The playbook's recommended action for each customer and the next-best product (the highest-lift product "
        "in the customer's persona that the customer does not hold).", tuple(_actions(seg, labels_zh))))

    # ---- migration
    report.add(h.Section(
        "migration", titles["migration"],
        "Rows are where customers were in the previous run, columns where they are now; the diagonal stayed put. "
        "Percentages are of each row (of the customers who started there).",
        tuple(_migration(seg, previous, run.migration_tables, labels_zh, tiers))))
    return report


def _dist_table(table: pd.DataFrame, caption: str, value: str, table_id: str) -> str:
    return h.table(table.drop(columns="code"), caption=caption, table_id=table_id,
                   formats={"share": ".1%", f"{value} share": ".1%"}, shade={"customers": "#1f5f8b"})


def _overview(run: ScoringRun, as_of_text: str) -> list[str]:
    seg = run.segments
    pairs: list[tuple[str, object]] = [("As of", as_of_text), ("Customers", f"{len(seg):,}"),
                                       ("Personas", f"{seg['persona_id'].nunique():,}")]
    if "model_versions" in seg:
        versions = seg["model_versions"].astype("str").value_counts()
        pairs.append(("Model versions used", "; ".join(f"{v} ({n:,} customers)" for v, n in versions.items())))
    for key, val in run.summary.items():  # scalars, and one level of nested counts
        if isinstance(val, (str, int, float, bool)):
            pairs.append((english(key), val))
        elif isinstance(val, dict) and key in ("counts", "timings", "model_versions"):
            pairs += [(f"{english(key)}: {k.replace('_', ' ')}", v) for k, v in val.items()
                      if isinstance(v, (str, int, float, bool))]
    blocks = [h.key_values(pairs)]
    if run.features is None:
        blocks.append(h.callout("No feature table was available: persona cards show sizes, scores and actions "
                                "but not behaviour or product holding.", "warn"))
    return blocks


def _segment_blocks(seg: pd.DataFrame, column: str, caption: str, labels_zh, value: str) -> list[str]:
    table = distribution(seg, column, labels_zh, value)
    extra = {}
    for p in ("p_churn", "p_conversion", "p_upgrade", "clv"):
        if p in seg:
            extra[f"mean {p}"] = pd.to_numeric(seg[p], errors="coerce").groupby(
                seg[column].astype("str").to_numpy()).mean().reindex(table["code"]).to_numpy()
    for k, v in extra.items():
        table[k] = v
    return [
        h.figure(plots.count_bars(table.set_index("code")["customers"].rename(index=english),
                                  f"Customers by {column.replace('_', ' ')}"), f"Customers by {column}"),
        h.table(table.drop(columns="code"), caption=caption, table_id=f"{column.replace('_', '-')}-table",
                formats={"share": ".1%", f"{value} share": ".1%", "mean p_churn": ".1%",
                         "mean p_conversion": ".1%", "mean p_upgrade": ".1%"},
                shade={"customers": "#1f5f8b"}),
    ]


def _tier_grid(seg: pd.DataFrame, tiers: Sequence[str], labels_zh) -> list[str]:
    comp = seg["composite_tier"].astype("str")
    serv = seg["service_tier"].astype("str")
    unknown = sorted((set(comp) | set(serv)) - set(tiers))
    if unknown:
        raise ValueError(f"tiers {unknown} are not configured composite tiers {list(tiers)}")
    grid = pd.crosstab(pd.Categorical(comp, categories=tiers), pd.Categorical(serv, categories=tiers),
                       dropna=False).reindex(index=tiers, columns=tiers, fill_value=0)
    shown = grid.copy()
    shown.index = [bilingual("composite_tier", t, labels_zh) for t in tiers]
    shown.columns = [bilingual("service_tier", t, labels_zh) for t in tiers]
    rows = []
    top = max(int(grid.to_numpy().max()), 1)
    for i, tier in enumerate(tiers):
        cells = [h.Cell(shown.index[i])]
        for j, other in enumerate(tiers):
            n = int(grid.iat[i, j])
            style = f"background: {h.blend('#1f5f8b', n / top)}" + ("; font-weight: 600" if i == j else "")
            cells.append(h.Cell(f"{n:,}", {"data-composite": tier, "data-service": other, "data-value": str(n)},
                                numeric=True, style=style))
        rows.append(cells)
    off = int(grid.to_numpy().sum() - np.trace(grid.to_numpy()))
    return [
        h.cell_table(["composite \\ service", *shown.columns], rows, table_id="tier-grid-table",
                     caption="Customers per composite tier (rows) and service tier (columns)"),
        h.paragraph(f"{off:,} customers ({off / max(len(seg), 1):.1%}) are served at a tier other than the one "
                    "their balances earn (manual overrides, audited)."),
        h.figure(plots.heatmap(grid.rename(index=english, columns=english), "Composite (rows) x service (columns)",
                               fmt="{:,.0f}"), "Tier grid heat map"),
    ]


def _persona_cards(run: ScoringRun, settings: SegmentReportSettings, labels_zh) -> list[str]:
    seg = run.segments
    names = persona_labels(seg)
    sizes = seg["persona_id"].value_counts()
    feats = None
    if run.features is not None:
        feats = run.features.merge(seg[["customer_id", "persona_id"]], on="customer_id", how="inner",
                                   validate="one_to_one")
    profile_cols = [] if feats is None else [c for c in settings.profile_features if c in feats]
    holding_cols = [] if feats is None else [c for c in feats.columns if c.startswith("hold_has_")]
    blocks = []
    if feats is not None:
        blocks.append(h.paragraph(
            f"Behaviour and holdings come from the feature table of {len(feats):,} of these customers "
            f"({len(feats) / max(len(seg), 1):.0%}). Differences are in standard deviations of the whole book."))
    z = None
    if profile_cols:
        values = feats[profile_cols].apply(pd.to_numeric, errors="coerce")
        mean, std = values.mean(), values.std(ddof=0).replace(0, np.nan)
        by_persona = values.groupby(feats["persona_id"].to_numpy()).mean()
        z = (by_persona - mean) / std
    lift = None
    if holding_cols:
        from bankseg.segments.playbook import fit_product_lift

        products = [c.removeprefix("hold_has_") for c in holding_cols]
        lift = fit_product_lift(feats, "persona_id", products)
        held_rate = feats[holding_cols].gt(0).groupby(feats["persona_id"].to_numpy()).mean()
        held_rate.columns = products
    items = []
    for pid in sorted(sizes.index):
        members = seg.loc[seg["persona_id"] == pid]
        parts = []
        facts = [("Customers", f"{len(members):,} ({len(members) / len(seg):.1%} of the book)")]
        for col, what in (("p_churn", "Mean churn probability"), ("p_conversion", "Mean conversion probability"),
                          ("p_upgrade", "Mean upgrade probability")):
            if col in members:
                facts.append((what, f"{pd.to_numeric(members[col], errors='coerce').mean():.1%}"))
        facts.append(("Mean CLV", f"{pd.to_numeric(members['clv'], errors='coerce').mean():,.0f}"))
        top_tier = members["composite_tier"].astype("str").value_counts()
        facts.append(("Largest tier", f"{bilingual('composite_tier', top_tier.index[0], labels_zh)} "
                                      f"({top_tier.iloc[0] / len(members):.0%})"))
        parts.append(h.key_values(facts))
        if z is not None and pid in z.index:
            row = z.loc[pid].dropna()
            row = row[row.abs() >= MIN_ABS_Z]  # smaller gaps are noise, not what sets a persona apart
            apart = row.reindex(row.abs().sort_values(ascending=False).index[: settings.distinguishing_features])
            lines = [
                f"{'Higher' if v > 0 else 'Lower'} {feature_label(f).lower()} {feature_label(f, 'zh')} "
                f"({v:+.1f} std)" for f, v in apart.items()
            ] or [f"Within {MIN_ABS_Z} std of the book on every profile feature"]
            parts += [h.heading("What sets it apart 特征", 4), h.bullet_list(lines)]
        if lift is not None and pid in lift.index:
            top_lift = lift.loc[pid].sort_values(ascending=False)
            top_lift = top_lift[top_lift > 1.0].head(settings.top_products)
            if len(top_lift):
                table = pd.DataFrame({
                    "product": [_product_label(p) for p in top_lift.index],
                    "held by": [held_rate.at[pid, p] for p in top_lift.index],
                    "lift": top_lift.to_numpy(),
                })
                parts += [h.heading("Holds more than average 产品持有提升", 4),
                          h.table(table, formats={"held by": ".0%", "lift": ".2f"})]
        nbp = members["next_best_product"].dropna().astype("str").value_counts().head(settings.top_actions)
        if len(nbp):
            parts += [h.heading("Next-best products 推荐产品", 4),
                      h.bullet_list(f"{_product_label(p)}: {n:,} customers" for p, n in nbp.items())]
        action_col = "action_en" if "action_en" in members else "action"
        acts = members[[c for c in ("action", action_col, "action_zh") if c in members]].astype("str")
        counts = acts.groupby("action").size().sort_values(ascending=False).head(settings.top_actions)
        lines = []
        for code, n in counts.items():
            first = acts.loc[acts["action"] == code].iloc[0]
            text = first.get("action_en", english(code))
            zh = first.get("action_zh", labels_zh.get("action", {}).get(code, ""))
            lines.append(f"{text} {zh} ({n / len(members):.0%})")
        parts += [h.heading("Recommended actions 推荐策略", 4), h.bullet_list(lines)]
        items.append(h.card(f"Persona {names.get(pid, pid)}", parts, card_id=f"persona-{pid}"))
    blocks.append(h.cards(items))
    if z is not None:
        shown = z.T.rename(index=lambda f: feature_label(f), columns=lambda p: str(p))
        blocks.append(h.figure(plots.heatmap(shown, "Persona profiles: difference from the book (std)",
                                             fmt="{:+.1f}", xlabel="persona id", cmap="RdBu_r"),
                               "Persona profile heat map"))
    if lift is not None:
        blocks.append(h.figure(plots.heatmap(lift.T.rename(index=english, columns=str),
                                             "Product holding lift by persona (1 = book average)",
                                             fmt="{:.1f}", xlabel="persona id", cmap="Greens"),
                               "Product holding lift heat map"))
    return blocks


def _product_label(product: str) -> str:
    from bankseg.features.dictionary import PRODUCT_NAMES

    en, zh = PRODUCT_NAMES.get(product, (english(product), ""))
    return f"{en[:1].upper() + en[1:]} {zh}".strip()


def _pareto(seg: pd.DataFrame, value: str, top: float, n_groups: int) -> list[str]:
    from bankseg.segments.pareto import pareto_table, top_share

    values = pd.to_numeric(seg[value], errors="coerce").fillna(0.0).clip(lower=0.0)
    table = pareto_table(values, n_groups)
    held = top_share(values, top)
    blocks = [
        h.callout(f"The top {top:.0%} of customers by {value} hold {held:.1%} of it.", "info"),
        h.figure(plots.pareto_curve(table, f"Pareto curve of {value}", top), "Pareto curve"),
        h.table(table, formats={"value_share": ".1%", "cum_customer_share": ".0%", "cum_value_share": ".1%"},
                caption=f"{value} by customer decile (group 1 = highest)", table_id="pareto-table"),
    ]
    if "clv" in seg:
        clv = pd.to_numeric(seg["clv"], errors="coerce").fillna(0.0).clip(lower=0.0)
        blocks.insert(1, h.paragraph(f"By customer lifetime value: the top {top:.0%} hold "
                                     f"{top_share(clv, top):.1%} of total CLV."))
    return blocks


def _propensity(seg: pd.DataFrame) -> list[str]:
    rows = []
    for model in BANDS:
        band, prob = f"{model}_band", f"p_{model}"
        if band not in seg or prob not in seg:
            continue
        grouped = pd.to_numeric(seg[prob], errors="coerce").groupby(seg[band].astype("str").to_numpy())
        stats = grouped.agg(["size", "mean"])
        for name, row in stats.iterrows():
            rows.append({"model": model, "band": name, "customers": int(row["size"]),
                         "share": row["size"] / len(seg), "mean probability": row["mean"]})
    if not rows:
        return [h.callout("The scoring output holds no propensity bands.", "warn")]
    table = pd.DataFrame(rows)
    order = {"low": 0, "medium": 1, "high": 2}
    table = table.sort_values(["model", "band"], key=lambda s: s.map(order).fillna(9) if s.name == "band" else s)
    shares = table.pivot_table(index="model", columns="band", values="share", fill_value=0.0)
    shares = shares[[c for c in ("low", "medium", "high") if c in shares] +
                    [c for c in shares.columns if c not in order]]
    return [h.figure(plots.grouped_bars(shares, "Share of customers by propensity band", "share of customers"),
                     "Propensity bands"),
            h.table(table, formats={"share": ".1%", "mean probability": ".1%"}, table_id="propensity-table")]


def _clv(seg: pd.DataFrame, labels_zh) -> list[str]:
    blocks = []
    clv = pd.to_numeric(seg["clv"], errors="coerce")
    frame = seg.assign(clv=clv)
    tiers = category_order("composite_tier", seg["composite_tier"], labels_zh)
    blocks.append(h.figure(plots.distribution_by_group(
        frame.assign(composite_tier=seg["composite_tier"].astype("str")), "clv", "composite_tier", tiers,
        "CLV by composite tier", "CLV"), "CLV by tier"))
    total = float(clv.sum())
    for column, caption in (("composite_tier", "CLV by composite tier 综合等级"),
                            ("quadrant", "CLV by quadrant 四象限"), ("persona", "CLV by persona 客群")):
        if column == "persona":
            keys = seg["persona_id"].map(persona_labels(seg)).astype("str")
            order = list(persona_labels(seg))
        else:
            keys = seg[column].astype("str")
            order = category_order(column, seg[column], labels_zh)
        g = clv.groupby(keys.to_numpy()).agg(["size", "sum", "mean", "median"]).reindex(order).dropna(how="all")
        table = pd.DataFrame({
            "segment": [k if column == "persona" else bilingual(column, k, labels_zh) for k in g.index],
            "customers": g["size"].astype("int64").to_numpy(),
            "total CLV": g["sum"].to_numpy(), "share of CLV": g["sum"].to_numpy() / total if total else np.nan,
            "mean CLV": g["mean"].to_numpy(), "median CLV": g["median"].to_numpy(),
        })
        blocks.append(h.table(table, caption=caption, formats={"share of CLV": ".1%"},
                              shade={"mean CLV": "#2a9d8f"}, table_id=f"clv-{column.replace('_', '-')}-table"))
    return blocks


def _actions(seg: pd.DataFrame, labels_zh) -> list[str]:
    acts = distribution(seg, "action", labels_zh, value=None)
    if "action_en" in seg:
        texts = seg[["action", "action_en"] + (["action_zh"] if "action_zh" in seg else [])].astype("str")
        texts = texts.drop_duplicates("action").set_index("action")
        acts["what to do"] = acts["code"].map(texts["action_en"])
        if "action_zh" in texts:
            acts["具体策略"] = acts["code"].map(texts["action_zh"])
    nbp = seg["next_best_product"].astype("str").where(seg["next_best_product"].notna(), "(none)")
    products = nbp.value_counts().rename_axis("product").reset_index(name="customers")
    products["product"] = products["product"].map(lambda p: p if p == "(none)" else _product_label(p))
    products["share"] = products["customers"] / len(seg)
    return [
        h.table(acts.drop(columns="code"), caption="Recommended action 推荐策略", formats={"share": ".1%"},
                shade={"customers": "#1f5f8b"}, table_id="actions-table"),
        h.figure(plots.count_bars(products.set_index("product")["customers"].rename(
            index=lambda p: p.split(" ")[0] if p != "(none)" else p), "Next-best product"), "Next-best products"),
        h.table(products, caption="Next-best product 下一个最佳产品", formats={"share": ".1%"},
                table_id="next-best-table"),
    ]


def _migration(seg: pd.DataFrame, previous: pd.DataFrame | None, tables: Mapping[str, pd.DataFrame], labels_zh,
               tiers: Sequence[str]) -> list[str]:
    if previous is None:
        if tables:
            blocks = [h.paragraph("Migration tables written by the scoring job:")]
            for name, table in tables.items():
                blocks.append(h.table(table.reset_index() if table.index.name else table, caption=name,
                                      table_id=f"migration-{name}"))
            return blocks
        return [h.callout("No previous scoring run was given (previous_dir=...), so there is nothing to compare "
                          "with yet. Migration matrices appear from the second run on.", "info")]
    check_segments(previous)
    prev_as_of = ", ".join(sorted({d.date().isoformat() for d in pd.to_datetime(previous["as_of"]).unique()}))
    blocks = [h.paragraph(f"Previous run as of {prev_as_of}: {len(previous):,} customers; this run {len(seg):,}.")]
    cur_persona = seg.set_index("customer_id")["persona_id"].map(persona_labels(seg))
    prev_persona = previous.set_index("customer_id")["persona_id"].map(persona_labels(previous))
    for column, title in MIGRATION_COLUMNS:
        if column == "persona":
            before, after = prev_persona, cur_persona
            order = list(dict.fromkeys([*persona_labels(previous), *persona_labels(seg)]))
        else:
            before = previous.set_index("customer_id")[column]
            after = seg.set_index("customer_id")[column]
            order = list(tiers) if column == "composite_tier" else category_order(column, after, labels_zh)
        matrix = migration_matrix(before, after, order)

        def label(c, col=column):
            return c if col == "persona" or c in (NEW, LEFT) else bilingual(col, c, labels_zh)

        stayed = int(sum(matrix.at[r, r] for r in matrix.index if r in matrix.columns))
        moved = int(matrix.to_numpy().sum()) - stayed
        share = matrix.div(matrix.sum(axis=1).replace(0, np.nan), axis=0)
        rows = []
        for r in matrix.index:  # one row per category: a handful, never customers
            cells = [h.Cell(label(r))]
            for c in matrix.columns:
                n, frac = int(matrix.at[r, c]), float(np.nan_to_num(share.at[r, c]))
                style = f"background: {h.blend('#2a9d8f', frac)}" + ("; font-weight: 600" if r == c else "")
                cells.append(h.Cell(f"{n:,} ({frac:.0%})", {"data-value": str(n)}, numeric=True, style=style))
            rows.append(cells)
        blocks.append(h.heading(f"{title}: {stayed:,} stayed, {moved:,} moved, joined or left"))
        blocks.append(h.cell_table(["previous \\ now", *(label(c) for c in matrix.columns)], rows,
                                   table_id=f"migration-{column.replace('_', '-')}-table"))
        if column == "composite_tier":
            blocks.append(h.figure(plots.heatmap(share.rename(index=english, columns=english) * 100,
                                                 "Tier migration, % of each previous tier", fmt="{:.0f}",
                                                 xlabel="now", ylabel="previous run"), "Tier migration heat map"))
    return blocks


def build_segment_report_html(run: ScoringRun, labels_zh, settings: SegmentReportSettings, **kwargs) -> str:
    """The rendered HTML of :func:`segment_report`."""
    return h.render(segment_report(run, labels_zh, settings, **kwargs), footer="bankseg segment profile report")
