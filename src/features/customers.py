"""Customer features (``cust_``): age, tenure, demographics and the static scores of the customers table.

Point in time: customers whose ``open_date`` is on or after ``as_of`` were not customers yet and get no row;
this block therefore defines the population of the feature table. ``mobile_banking_since`` on or after
``as_of`` counts as not yet enrolled. Columns that carry no date (questionnaire score, credit score, income)
are taken as they are in the table: the table is a snapshot, and a bank that keeps their history should
pass the snapshot valid at ``as_of``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bankseg.data.schema import CITY_TIERS, EDUCATIONS, GENDERS, OCCUPATIONS
from bankseg.features import _kernels as k

CUSTOMER_COLUMNS = (
    "customer_id",
    "birth_date",
    "gender",
    "city_tier",
    "occupation",
    "education",
    "declared_income_monthly",
    "open_date",
    "risk_questionnaire_score",
    "credit_score",
    "mobile_banking_since",
)
CATEGORICAL_FEATURES: dict[str, tuple[str, ...]] = {
    "cust_gender": GENDERS,
    "cust_occupation": OCCUPATIONS,
    "cust_education": EDUCATIONS,
}


def build_customer_features(
    rows: pd.DataFrame,
    as_of: pd.Timestamp,
    *,
    customer_ids: Sequence[int] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Return one row per customer who opened an account before ``as_of`` (restricted to ``customer_ids``).

    Columns: ``cust_age`` (whole years at as_of, float; NaN without a birth date), ``cust_tenure_months``
    (whole months since open_date), ``cust_gender``, ``cust_occupation``, ``cust_education`` (category with
    the schema's values), ``cust_city_tier`` (int, 5 = rural), ``cust_declared_income_monthly``,
    ``cust_risk_questionnaire_score`` and ``cust_credit_score`` (NaN when missing),
    ``cust_mobile_banking_months`` (whole months since enrolment; NaN when not enrolled before as_of).
    """
    k.require_columns(rows, CUSTOMER_COLUMNS, "customers")
    as_of = k.normalise_as_of(as_of)
    open_date = k.datetime_values(rows["open_date"], "customers.open_date")
    keep = open_date < as_of.to_datetime64()
    if customer_ids is not None:
        keep &= np.isin(rows["customer_id"].to_numpy(dtype=np.int64), np.asarray(customer_ids, np.int64))
    cust = rows.loc[keep]
    cid = cust["customer_id"].to_numpy(dtype=np.int64)
    dup = pd.Series(cid).duplicated(keep=False).to_numpy()
    if dup.any():
        raise ValueError(f"customers: duplicate customer_id values {np.unique(cid[dup])[:10].tolist()}")
    tiers = cust["city_tier"]
    bad_tier = ~tiers.isin(CITY_TIERS).to_numpy()
    if bad_tier.any():
        raise ValueError(
            f"customers.city_tier: {int(bad_tier.sum())} rows outside {list(CITY_TIERS)} "
            f"(customer_ids {cid[bad_tier][:10].tolist()})"
        )

    out: dict[str, object] = {"customer_id": cid}
    out["cust_age"] = np.floor(
        k.whole_months_between(k.datetime_values(cust["birth_date"], "customers.birth_date"), as_of) / 12
    )
    out["cust_tenure_months"] = k.whole_months_between(open_date[keep], as_of).astype(np.int64)
    for feature, values in CATEGORICAL_FEATURES.items():
        source = cust[feature.removeprefix("cust_")]
        k.category_codes(source, values, f"customers.{feature.removeprefix('cust_')}")
        out[feature] = pd.Categorical(source.astype("str").where(source.notna()), categories=list(values))
    out["cust_city_tier"] = tiers.to_numpy(dtype=np.int64)
    for column in ("declared_income_monthly", "risk_questionnaire_score", "credit_score"):
        out[f"cust_{column}"] = cust[column].to_numpy(dtype=np.float64, na_value=np.nan)
    mobile = k.datetime_values(cust["mobile_banking_since"], "customers.mobile_banking_since").copy()
    mobile[mobile >= as_of.to_datetime64()] = np.datetime64("NaT")
    out["cust_mobile_banking_months"] = k.whole_months_between(mobile, as_of)
    frame = pd.DataFrame(out)
    return frame.sort_values("customer_id", ignore_index=True)
