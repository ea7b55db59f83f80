"""Interaction features (``int_``): logins by window, complaints, campaign contacts and response, visits.

Point in time: only events with ``ts < as_of``; window ``w`` is ``[as_of - w months, as_of)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bankseg.data.schema import INTERACTION_KINDS
from bankseg.features import _kernels as k

INTERACTION_COLUMNS = ("customer_id", "ts", "kind")
CAMPAIGN_MONTHS = 12
VISIT_MONTHS = 3
TREND_MONTHS = 3


def build_interaction_features(
    rows: pd.DataFrame,
    as_of: pd.Timestamp,
    *,
    windows: Sequence[int],
    customer_ids: Sequence[int] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Return one row of interaction features per customer, from events strictly before ``as_of``.

    ``rows`` holds the interactions table (customer_id, ts, kind). Output rows are ``customer_ids`` (sorted)
    when given, else customers with an event in the look-back (``max(windows, 12)`` months).

    Columns: ``int_logins_{w}m`` (app logins), ``int_complaints_12m``, ``int_campaign_contacts_12m``,
    ``int_campaign_response_rate_12m`` (responses / contacts, capped at 1; NaN without contacts),
    ``int_branch_visits_3m``, ``int_login_trend_3m`` (logins of the last 3 months / the 3 before - 1; NaN
    when the earlier 3 months have none).
    """
    k.require_columns(rows, INTERACTION_COLUMNS, "interactions")
    as_of = k.normalise_as_of(as_of)
    windows = k.validate_windows(windows)
    n_slices = k.lookback_months(windows, CAMPAIGN_MONTHS)

    ts = k.datetime_values(rows["ts"], "interactions.ts")
    slices = k.month_slices(ts, as_of, n_slices)
    cid = rows["customer_id"].to_numpy(dtype=np.int64)
    in_lookback = slices >= 0
    ids = k.customer_index(cid[in_lookback] if customer_ids is None else customer_ids)
    n = ids.size
    codes = k.customer_codes(cid, ids)
    sel = np.flatnonzero(in_lookback & (codes >= 0))
    kind = k.category_codes(rows["kind"], INTERACTION_KINDS, "interactions.kind")[sel].astype(np.int64)
    n_kinds = len(INTERACTION_KINDS)
    cell = (codes[sel] * n_slices + slices[sel]) * n_kinds + kind
    counts = k.grouped_sum(cell, n * n_slices * n_kinds).reshape(n, n_slices, n_kinds)

    def kind_sum(name: str, months: int) -> np.ndarray:
        return counts[:, :months, INTERACTION_KINDS.index(name)].sum(axis=1)

    out: dict[str, np.ndarray] = {"customer_id": ids}
    logins = k.window_sums(counts[:, :, INTERACTION_KINDS.index("app_login")], windows)
    for w in windows:
        out[f"int_logins_{w}m"] = np.rint(logins[w]).astype(np.int64)
    out["int_complaints_12m"] = kind_sum("complaint", CAMPAIGN_MONTHS).astype(np.int64)
    contacts = kind_sum("campaign_contact", CAMPAIGN_MONTHS)
    responses = kind_sum("campaign_response", CAMPAIGN_MONTHS)
    out["int_campaign_contacts_12m"] = contacts.astype(np.int64)
    out["int_campaign_response_rate_12m"] = np.minimum(k.safe_ratio(responses, contacts, np.nan), 1.0)
    out["int_branch_visits_3m"] = kind_sum("branch_visit", VISIT_MONTHS).astype(np.int64)
    recent = kind_sum("app_login", TREND_MONTHS)
    earlier = counts[:, TREND_MONTHS : 2 * TREND_MONTHS, INTERACTION_KINDS.index("app_login")].sum(axis=1)
    out["int_login_trend_3m"] = k.safe_ratio(recent, earlier, np.nan) - 1.0
    return pd.DataFrame(out)
