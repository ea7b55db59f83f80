"""All segment rules in one typed object, built from the ``segments`` config group (conf/segments/*.yaml).

Entry points pass ``OmegaConf.to_container(cfg.segments, resolve=True)`` to :func:`load_segment_rules`; tests
and notebooks may use :func:`load_default_segment_rules`. Loading checks the rules against each other
(tier names used by other rules exist, RFM segments cover every score cell, ...) so a bad config fails
before any customer is scored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

import yaml

from bankseg.segments.clv import ClvRules
from bankseg.segments.lifecycle import DormancyRules, LifecycleRules
from bankseg.segments.playbook import PlaybookRules
from bankseg.segments.quadrant import QuadrantRules
from bankseg.segments.rfm import RfmSegmentRules
from bankseg.segments.risk_appetite import RiskAppetiteRules
from bankseg.segments.tiers import CompositeTierRules, ServiceTierRules
from bankseg.segments.value_class import ValueClassRules

SECTIONS: tuple[str, ...] = (
    "composite_tier", "service_tier", "quadrant", "dormancy", "value_class", "lifecycle", "rfm",
    "risk_appetite", "clv", "pareto", "playbook",
)


@dataclass(frozen=True)
class ParetoRules:
    """How the Pareto table is cut: ``n_groups`` (10 = deciles) and the headline top share (0.2)."""

    n_groups: int = 10
    top_share: float = 0.2


@dataclass(frozen=True)
class SegmentRules:
    """Every rule-based segment's settings, typed."""

    composite_tier: CompositeTierRules
    service_tier: ServiceTierRules
    quadrant: QuadrantRules
    dormancy: DormancyRules
    value_class: ValueClassRules
    lifecycle: LifecycleRules
    rfm: RfmSegmentRules
    risk_appetite: RiskAppetiteRules
    clv: ClvRules
    pareto: ParetoRules
    playbook: PlaybookRules

    def labels_zh(self) -> dict[str, dict[str, str]]:
        """Chinese labels per output column: {'composite_tier': {'gold': '黄金', ...}, ...} for reports."""
        named = {
            "composite_tier": self.composite_tier.levels,
            "service_tier": self.composite_tier.levels,
            "quadrant": self.quadrant.names,
            "value_class": self.value_class.names,
            "lifecycle": self.lifecycle.names,
            "rfm_segment": self.rfm.names,
            "risk_appetite": self.risk_appetite.names,
        }
        labels = {column: {n.name: n.zh for n in names} for column, names in named.items()}
        labels["action"] = {a.name: a.zh for a in self.playbook.actions}
        return labels


def load_segment_rules(cfg: Mapping) -> SegmentRules:
    """Typed, cross-checked rules from the plain mapping of the ``segments`` config group."""
    missing = [s for s in SECTIONS if s not in cfg]
    unknown = sorted(set(cfg) - set(SECTIONS))
    if missing or unknown:
        raise ValueError(f"segments config: missing sections {missing}, unknown sections {unknown}")
    tiers = CompositeTierRules.from_dict(cfg["composite_tier"])
    pareto = cfg["pareto"] or {}
    return SegmentRules(
        composite_tier=tiers,
        service_tier=ServiceTierRules.from_dict(cfg["service_tier"] or {}, tiers),
        quadrant=QuadrantRules.from_dict(cfg["quadrant"], tiers),
        dormancy=DormancyRules.from_dict(cfg["dormancy"] or {}),
        value_class=ValueClassRules.from_dict(cfg["value_class"], tiers),
        lifecycle=LifecycleRules.from_dict(cfg["lifecycle"]),
        rfm=RfmSegmentRules.from_dict(cfg["rfm"]),
        risk_appetite=RiskAppetiteRules.from_dict(cfg["risk_appetite"]),
        clv=ClvRules.from_dict(cfg["clv"]),
        pareto=ParetoRules(n_groups=int(pareto.get("n_groups", 10)), top_share=float(pareto.get("top_share", 0.2))),
        playbook=PlaybookRules.from_dict(cfg["playbook"]),
    )


def load_default_segment_rules(name: str = "default") -> SegmentRules:
    """The rules of conf/segments/<name>.yaml as shipped in the package (bankseg.conf).

    Values a data source may set (``${oc.select:data.tier_bounds.gold,50000}``) take their defaults here.
    """
    from omegaconf import OmegaConf

    text = resources.files("bankseg.conf").joinpath("segments", f"{name}.yaml").read_text(encoding="utf-8")
    return load_segment_rules(OmegaConf.to_container(OmegaConf.create(yaml.safe_load(text)), resolve=True))
