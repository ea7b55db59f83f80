"""Assemble one part's canonical tables (schema.py) and ground truth from the simulated population and history.

Dtypes: customer_id and txn_id int64, dates ``datetime64[ms]``, categorical columns pandas ``category`` with the
full category list from schema.py (so parts concatenate and Parquet dictionaries agree), money float64 in CNY
rounded to cents. Rows are ordered by customer, then time (transactions, interactions, balances) or product.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bankseg.data import schema
from bankseg.data.simulate_dynamics import ACTIVE, MonthlyHistory
from bankseg.data.simulate_flows import MS_PER_DAY, Calendar, expand_flows
from bankseg.data.simulate_population import PERSONAS, Population

TXN_ID_STRIDE = 10_000_000_000  # txn_id = part index * stride + row: unique across the whole dataset
STATES: tuple[str, ...] = ("not_joined", "active", "warning", "draining", "left_residual", "closed")


def _cat(codes: np.ndarray, values: tuple) -> pd.Categorical:
    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int16), categories=list(values))


def _ms(values: np.ndarray) -> np.ndarray:
    """int64 ms since epoch (negative = missing only where flagged by the caller) -> datetime64[ms]."""
    return np.asarray(values, dtype=np.int64).astype("datetime64[ms]")


def _ms_nullable(values: np.ndarray) -> np.ndarray:
    out = _ms(values)
    out[np.asarray(values) < 0] = np.datetime64("NaT")
    return out


def build_customers(ids: np.ndarray, pop: Population, hist: MonthlyHistory) -> pd.DataFrame:
    """The customers table."""
    return pd.DataFrame(
        {
            "customer_id": ids,
            "birth_date": _ms(pop.birth_ms),
            "gender": _cat(pop.gender, schema.GENDERS),
            "city_tier": pop.city_tier.astype(np.int64),
            "occupation": _cat(pop.occupation, schema.OCCUPATIONS),
            "education": _cat(pop.education, schema.EDUCATIONS),
            "declared_income_monthly": pop.declared_income.astype(np.float64),
            "open_date": _ms((pop.open_ms // MS_PER_DAY) * MS_PER_DAY),
            "risk_questionnaire_score": pop.risk_score.astype(np.float64),
            "credit_score": pop.credit_score.astype(np.float64),
            "mobile_banking_since": _ms_nullable(hist.mobile_since_ms),
        }
    )


def build_transactions(
    rng: np.random.Generator,
    ids: np.ndarray,
    part_idx: int,
    pop: Population,
    hist: MonthlyHistory,
    cal: Calendar,
    channels: dict,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The transactions table (by customer, then time), and the demand deposit's average daily balance.

    The average daily balance (months x customers) follows from the timing of the flows: the month's opening
    balance plus each transaction's signed amount weighted by the share of the month it was on the account.
    """
    fixed = {"salary": pop.salary_day, "pension": pop.pension_day, "repayment": pop.repayment_day}
    cols, weighted = expand_flows(rng, hist.counts, hist.totals, hist.lower_day, hist.consumption_liquid_share,
                                  cal, pop.digital, fixed, channels)
    adb = np.maximum(hist.liquid_start + weighted, 0.0)
    n = hist.lower_day.shape[1]
    cust = cols["cell"] % n
    order = np.argsort((cust << 40) | (cols["ts_ms"] - cal.start_ms[0]))
    rows = order.size
    df = pd.DataFrame(
        {
            "txn_id": part_idx * TXN_ID_STRIDE + np.arange(rows, dtype=np.int64),
            "customer_id": ids[cust[order]],
            "ts": _ms(cols["ts_ms"][order]),
            "amount": cols["amount"][order],
            "direction": _cat(cols["direction"][order], schema.DIRECTIONS),
            "channel": _cat(cols["channel"][order], schema.CHANNELS),
            "category": _cat(cols["category"][order], schema.TXN_CATEGORIES),
            "counterparty": _cat(cols["counterparty"][order], schema.COUNTERPARTIES),
        },
        copy=False,
    )
    return df, adb


def _empty_transactions() -> pd.DataFrame:
    e = np.zeros(0, dtype=np.int64)
    return pd.DataFrame(
        {
            "txn_id": e,
            "customer_id": e,
            "ts": _ms(e),
            "amount": np.zeros(0),
            "direction": _cat(e, schema.DIRECTIONS),
            "channel": _cat(e, schema.CHANNELS),
            "category": _cat(e, schema.TXN_CATEGORIES),
            "counterparty": _cat(e, schema.COUNTERPARTIES),
        }
    )


def build_balances(ids: np.ndarray, hist: MonthlyHistory, adb_liquid: np.ndarray, cal: Calendar) -> pd.DataFrame:
    """The balances table: one row per customer x month x product with a nonzero balance."""
    end = np.round(hist.balance_end, 2)
    avg = hist.balance_avg.copy()
    dd = schema.PRODUCTS.index("demand_deposit")
    avg[:, :, dd] = adb_liquid
    avg = np.round(avg, 2, out=avg)
    # Histories are month-major; rows go out by customer, month, product.
    ci, mi, pi = np.nonzero(np.swapaxes((end > 0) | (avg > 0), 0, 1))
    return pd.DataFrame(
        {
            "customer_id": ids[ci],
            "month": _ms(cal.start_ms[mi]),
            "product": _cat(pi, schema.PRODUCTS),
            "avg_daily_balance": avg[mi, ci, pi],
            "month_end_balance": end[mi, ci, pi],
        }
    )


def build_holdings(ids: np.ndarray, hist: MonthlyHistory) -> pd.DataFrame:
    """The holdings table: one row per product spell, ``closed`` missing while still held."""
    s = hist.spells
    order = np.lexsort((s["opened_ms"], s["product"], s["cust"]))
    return pd.DataFrame(
        {
            "customer_id": ids[s["cust"][order]],
            "product": _cat(s["product"][order], schema.PRODUCTS),
            "opened": _ms((s["opened_ms"][order] // MS_PER_DAY) * MS_PER_DAY),
            "closed": _ms_nullable(np.where(s["closed_ms"] < 0, -1, (s["closed_ms"] // MS_PER_DAY) * MS_PER_DAY)[order]),
        }
    )


def build_interactions(rng: np.random.Generator, ids: np.ndarray, hist: MonthlyHistory, cal: Calendar) -> pd.DataFrame:
    """The interactions table; a campaign response follows its contact within days."""
    m, n = hist.lower_day.shape
    custs, tss, kinds = [], [], []
    contact_ts = None
    for kind in schema.INTERACTION_KINDS:
        c = hist.interactions[kind]
        if kind == "campaign_response":
            # Responses are a subset of contacts (at most one each per month): reuse the contact's time.
            cell_c = np.repeat(np.arange(n * m), hist.interactions["campaign_contact"].ravel())
            keep = c.ravel()[cell_c] > 0
            cell = cell_c[keep]
            base = contact_ts[keep]
            month = cell // n
            month_end = cal.start_ms[month] + cal.days[month] * MS_PER_DAY - 1
            ts = np.minimum(base + (rng.random(cell.size) * 5 * MS_PER_DAY).astype(np.int64), month_end)
        else:
            cell = np.repeat(np.arange(n * m), c.ravel())
            month = cell // n
            lo = hist.lower_day.ravel()[cell]
            days = cal.days[month]
            day = lo + (rng.random(cell.size) * (days - lo + 1)).astype(np.int64)
            secs = (7 * 3600 + rng.random(cell.size) * 15 * 3600).astype(np.int64)
            ts = cal.start_ms[month] + (day - 1) * MS_PER_DAY + secs * 1000
            if kind == "campaign_contact":
                contact_ts = ts
        custs.append(cell % n)
        tss.append(ts)
        kinds.append(np.full(cell.size, schema.INTERACTION_KINDS.index(kind), dtype=np.int8))
    cust = np.concatenate(custs)
    ts = np.concatenate(tss)
    kind = np.concatenate(kinds)
    order = np.lexsort((kind, ts, cust))
    return pd.DataFrame(
        {
            "customer_id": ids[cust[order]],
            "ts": _ms(ts[order]),
            "kind": _cat(kind[order], schema.INTERACTION_KINDS),
        }
    )


def build_ground_truth(ids: np.ndarray, pop: Population, hist: MonthlyHistory, cal: Calendar) -> pd.DataFrame:
    """Latent truths, one row per customer: persona blend, churn onset (NaT if none), frailty."""
    onset = np.where(hist.onset_month >= 0, cal.start_ms[np.maximum(hist.onset_month, 0)], -1)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "persona": pd.array(np.asarray(PERSONAS, dtype=object)[pop.persona], dtype="str"),
            "second_persona": pd.array(np.asarray(PERSONAS, dtype=object)[pop.second], dtype="str"),
            "persona_mix_weight": pop.weight.mean(axis=1),
            "churn_onset_month": _ms_nullable(onset),
            "churn_abrupt": hist.abrupt,
            "churn_frailty": hist.frailty,
            "salary_redirected": hist.salary_redirected,
        }
    )


def build_ground_truth_monthly(ids: np.ndarray, pop: Population, hist: MonthlyHistory, cal: Calendar) -> pd.DataFrame:
    """Latent truths per customer x month (from the month a customer joins).

    churn_hazard is the month's churn-onset hazard (missing once a customer has left); churning is True from the
    onset month on; state is the customer's churn-process state; upgrade_hazard the probability of opening a
    higher-value product that month (missing unless active); dissatisfaction the latent driver of churn at the
    month's end; phase_months_left the months left in a warning or drain phase entering the next month;
    target_wealth the wealth the customer's money reverts to.
    """
    ci, mi = np.nonzero(hist.state.T >= ACTIVE)
    return pd.DataFrame(
        {
            "customer_id": ids[ci],
            "month": _ms(cal.start_ms[mi]),
            "state": _cat(hist.state[mi, ci], STATES),
            "churning": hist.state[mi, ci] > ACTIVE,
            "churn_hazard": hist.hazard[mi, ci].astype(np.float64),
            "upgrade_hazard": hist.upgrade_hazard[mi, ci].astype(np.float64),
            "engagement": hist.engagement[mi, ci].astype(np.float64),
            "persona_weight": pop.weight[ci, mi],
            "dissatisfaction": hist.dissatisfaction[mi, ci].astype(np.float64),
            "phase_months_left": hist.phase_left[mi, ci].astype(np.int64),
            "target_wealth": hist.target_wealth[mi, ci].astype(np.float64),
        }
    )
