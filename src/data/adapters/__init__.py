"""Adapters for public real bank datasets: Berka (canonical tables) and flat labelled snapshots (DESIGN.md "Real data")."""

from bankseg.data.adapters.berka import (
    BerkaConversion,
    CityTierRule,
    berka_settings,
    convert_berka,
    load_berka,
    write_berka_dataset,
)
from bankseg.data.adapters.flat import FlatSpec, LabelSpec, load_flat_snapshot

__all__ = [
    "BerkaConversion",
    "CityTierRule",
    "FlatSpec",
    "LabelSpec",
    "berka_settings",
    "convert_berka",
    "load_berka",
    "load_flat_snapshot",
    "write_berka_dataset",
]
