"""Every rule-based segment for a feature table in one call (what the segmenter and the batch job run)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import pandas as pd

from bankseg.segments._checks import require_columns
from bankseg.segments.clv import compute_clv
from bankseg.segments.lifecycle import assign_lifecycle
from bankseg.segments.playbook import next_best_product, recommend_action
from bankseg.segments.quadrant import assign_quadrant
from bankseg.segments.rfm import RfmBins, assign_rfm_segment, rfm_bins_for, score_rfm
from bankseg.segments.risk_appetite import assign_risk_appetite
from bankseg.segments.rules import SegmentRules
from bankseg.segments.tiers import (
    AUDIT_COLUMNS,
    apply_service_overrides,
    assign_composite_tier,
    composite_tier_value,
    derive_service_tier,
    tier_period,
)
from bankseg.segments.value_class import assign_value_class


class SegmentResult(NamedTuple):
    """Segments per feature row, the service-tier override audit, and the RFM bins that were used."""

    segments: pd.DataFrame
    audit: pd.DataFrame
    rfm_bins: RfmBins


def assign_segments(
    features: pd.DataFrame,
    rules: SegmentRules,
    overrides: pd.DataFrame | None = None,
    known_customer_ids: Iterable[int] | None = None,
    rfm_bins: RfmBins | None = None,
    lift_table: pd.DataFrame | None = None,
) -> SegmentResult:
    """All rule-based segments for a feature table of one as_of (one row per customer).

    Propensities are read from ``p_conversion`` / ``p_churn`` when the table has them (scoring adds them),
    else the rules that use them do not fire. RFM uses ``rfm_bins`` if given, else the configured fixed bins,
    else bins learned from this table (returned, so they can be stored). The next-best product needs
    ``lift_table`` and ``persona_id``; without a lift table that column is missing. Overrides: see
    :func:`bankseg.segments.tiers.apply_service_overrides`. The output keeps the input's index.
    """
    require_columns(features, ["customer_id", "as_of"], "assign_segments")
    as_of_values = pd.to_datetime(features["as_of"]).unique()
    if len(as_of_values) != 1:
        raise ValueError(f"assign_segments: one as_of per call, got {len(as_of_values)}")
    as_of = pd.Timestamp(as_of_values[0])
    p_conversion = features["p_conversion"] if "p_conversion" in features else None
    p_churn = features["p_churn"] if "p_churn" in features else None

    out = pd.DataFrame({"customer_id": features["customer_id"], "as_of": features["as_of"]}, index=features.index)
    out["tier_period"] = tier_period(as_of, rules.composite_tier.period)
    out["composite_tier_value"] = composite_tier_value(features, rules.composite_tier)
    out["composite_tier"] = assign_composite_tier(features, rules.composite_tier)
    rule_service = derive_service_tier(out["composite_tier"], rules.composite_tier, rules.service_tier)
    if overrides is not None:
        service, audit = apply_service_overrides(
            out["customer_id"], rule_service, overrides, as_of, rules.composite_tier, rules.service_tier,
            known_customer_ids,
        )
    else:
        service, audit = rule_service, pd.DataFrame(columns=list(AUDIT_COLUMNS))
    out["service_tier"] = service
    out["quadrant"] = assign_quadrant(
        out["composite_tier"], out["service_tier"], rules.composite_tier, rules.quadrant, p_conversion
    )
    out["value_class"] = assign_value_class(
        features, out["composite_tier"], rules.composite_tier, rules.value_class, rules.dormancy,
        p_conversion, p_churn,
    )
    out["lifecycle"] = assign_lifecycle(features, rules.lifecycle, rules.dormancy)
    bins = rfm_bins_for(features, rules.rfm, rfm_bins)
    out = out.join(score_rfm(features, bins))
    out["rfm_segment"] = assign_rfm_segment(out, rules.rfm)
    out = out.join(assign_risk_appetite(features, rules.risk_appetite))
    out["clv"] = compute_clv(features, rules.clv, p_churn)
    out = out.join(recommend_action(out, rules.playbook))
    if lift_table is not None:
        out = out.join(next_best_product(features, lift_table, rules.playbook,
                                         tier_value=out["composite_tier_value"].to_numpy(dtype=float)))
    return SegmentResult(out, audit, bins)
