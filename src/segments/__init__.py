"""Rule-based segmentation: tiers, service tier + overrides, quadrants, value classes, lifecycle, RFM,
risk appetite, CLV, Pareto table and playbook (DESIGN.md "Segments"). Thresholds come from conf/segments/."""

from bankseg.segments.assign import SegmentResult, assign_segments
from bankseg.segments.clv import ClvRules, annual_margin, annual_retention, compute_clv
from bankseg.segments.lifecycle import DormancyRules, LifecycleRules, assign_lifecycle, is_dormant
from bankseg.segments.pareto import pareto_table, top_share
from bankseg.segments.playbook import PlaybookRules, fit_product_lift, next_best_product, recommend_action
from bankseg.segments.quadrant import QuadrantRules, assign_quadrant
from bankseg.segments.rfm import RfmBins, RfmSegmentRules, assign_rfm_segment, fit_rfm_bins, score_rfm
from bankseg.segments.risk_appetite import RiskAppetiteRules, assign_risk_appetite, infer_risk_score
from bankseg.segments.rules import ParetoRules, SegmentRules, load_default_segment_rules, load_segment_rules
from bankseg.segments.tiers import (
    AUDIT_COLUMNS,
    OVERRIDE_COLUMNS,
    CompositeTierRules,
    ServiceTierResult,
    ServiceTierRules,
    apply_service_overrides,
    assign_composite_tier,
    composite_tier_value,
    derive_service_tier,
    normalise_overrides,
    read_overrides,
    tier_grid,
    tier_period,
)
from bankseg.segments.value_class import ValueClassRules, assign_value_class

__all__ = [
    "AUDIT_COLUMNS",
    "OVERRIDE_COLUMNS",
    "ClvRules",
    "CompositeTierRules",
    "DormancyRules",
    "LifecycleRules",
    "ParetoRules",
    "PlaybookRules",
    "QuadrantRules",
    "RfmBins",
    "RfmSegmentRules",
    "RiskAppetiteRules",
    "SegmentResult",
    "SegmentRules",
    "ServiceTierResult",
    "ServiceTierRules",
    "ValueClassRules",
    "annual_margin",
    "annual_retention",
    "apply_service_overrides",
    "assign_composite_tier",
    "assign_lifecycle",
    "assign_quadrant",
    "assign_rfm_segment",
    "assign_risk_appetite",
    "assign_segments",
    "assign_value_class",
    "composite_tier_value",
    "compute_clv",
    "derive_service_tier",
    "fit_product_lift",
    "fit_rfm_bins",
    "infer_risk_score",
    "is_dormant",
    "load_default_segment_rules",
    "load_segment_rules",
    "next_best_product",
    "normalise_overrides",
    "pareto_table",
    "read_overrides",
    "recommend_action",
    "score_rfm",
    "tier_grid",
    "tier_period",
    "top_share",
]
