"""Holding features (``hold_``): products held at ``as_of``, tenure, openings and closures.

Point in time: a holding opened on or after ``as_of`` does not exist yet; a closure on or after ``as_of`` has
not happened yet (the product counts as held). So these features are the same whether the table was
extracted at ``as_of`` (future closures still missing) or later.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bankseg.data.schema import PRODUCTS
from bankseg.features import _kernels as k

HOLDING_COLUMNS = ("customer_id", "product", "opened", "closed")
ACTIVITY_MONTHS = 12


def build_holding_features(
    rows: pd.DataFrame,
    as_of: pd.Timestamp,
    *,
    customer_ids: Sequence[int] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Return one row of holding features per customer as of ``as_of``.

    ``rows`` holds the holdings table (customer_id, product, opened, closed with NaT while held). Output rows
    are ``customer_ids`` (sorted) when given, else customers with a holding opened before ``as_of``.

    Columns: ``hold_n_products`` (distinct products held at as_of), ``hold_has_{product}`` (0/1, every
    product of the schema), ``hold_tenure_months_max`` (whole calendar months since the oldest still-held
    product was opened; 0 when nothing is held), ``hold_highest_product_rank`` (1-based position
    in schema.PRODUCTS of the highest-value product held; 0 when nothing is held), ``hold_n_opened_12m`` and
    ``hold_n_closed_12m`` (holdings opened / closed in ``[as_of - 12 months, as_of)``).
    """
    k.require_columns(rows, HOLDING_COLUMNS, "holdings")
    as_of = k.normalise_as_of(as_of)
    opened = k.datetime_values(rows["opened"], "holdings.opened")
    closed = k.datetime_values(rows["closed"], "holdings.closed")
    as_of64 = as_of.to_datetime64()
    year_ago = (as_of - pd.DateOffset(months=ACTIVITY_MONTHS)).to_datetime64()

    existed = opened < as_of64
    cid = rows["customer_id"].to_numpy(dtype=np.int64)
    ids = k.customer_index(cid[existed] if customer_ids is None else customer_ids)
    n = ids.size
    codes = k.customer_codes(cid, ids)
    existed &= codes >= 0
    closed_before = ~np.isnat(closed) & (closed < as_of64)
    held = existed & ~closed_before
    product = k.category_codes(rows["product"], PRODUCTS, "holdings.product").astype(np.int64)

    n_products = len(PRODUCTS)
    has = k.grouped_sum(codes[held] * n_products + product[held], n * n_products).reshape(n, n_products) > 0
    out: dict[str, np.ndarray] = {"customer_id": ids}
    out["hold_n_products"] = has.sum(axis=1).astype(np.int64)
    for i, p in enumerate(PRODUCTS):
        out[f"hold_has_{p}"] = has[:, i].astype(np.int8)

    months_held = k.whole_months_between(opened[held], as_of).astype(np.int64)
    longest = np.zeros(n, dtype=np.int64)
    np.maximum.at(longest, codes[held], months_held)
    out["hold_tenure_months_max"] = longest
    rank = np.where(has, np.arange(1, n_products + 1)[None, :], 0)
    out["hold_highest_product_rank"] = rank.max(axis=1).astype(np.int64)

    opened_recently = existed & (opened >= year_ago)
    closed_recently = existed & closed_before & (closed >= year_ago)
    out["hold_n_opened_12m"] = k.grouped_sum(codes[opened_recently], n).astype(np.int64)
    out["hold_n_closed_12m"] = k.grouped_sum(codes[closed_recently], n).astype(np.int64)
    return pd.DataFrame(out)
