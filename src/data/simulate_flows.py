"""Money flows of the simulated bank: what each kind of flow looks like, and their expansion into transactions.

The monthly dynamics decide, per customer and month, how many transactions of each flow there are and their
total amount (so balances follow exactly from flows). This module turns those (count, total) matrices into
individual transactions: amounts (lognormal shares of the total, rounded to cents), day of month (payday,
repayment day, month end ...), time of day, channel (digital with a probability falling with age) and
counterparty. Everything is vectorised over transactions; categorical draws use lookup tables rather than per-row searches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bankseg.data import schema

MS_PER_DAY = 86_400_000


@dataclass(frozen=True)
class Flow:
    """One kind of money movement: its fixed attributes and how its transactions spread over the month."""

    direction: str  # "in" | "out" (demand-deposit side)
    category: str  # schema.TXN_CATEGORIES
    counterparty: dict[str, float]  # counterparty -> probability
    channel_rule: str  # key of simulator.channels
    day_rule: str  # uniform | salary | pension | repayment | interest | month_end | month_start
    clock: str  # day | batch: time-of-day profile
    amount_sd: float  # log-sd of one transaction's share of the monthly total


FLOWS: dict[str, Flow] = {
    "salary": Flow("in", "salary", {"employer": 1.0}, "batch", "salary", "batch", 0.0),
    "pension": Flow("in", "transfer", {"government": 1.0}, "batch", "pension", "batch", 0.0),
    "farm_income": Flow("in", "transfer", {"other_bank": 0.55, "own_bank": 0.3, "government": 0.15},
                        "transfer", "uniform", "day", 0.6),
    "business_in": Flow("in", "transfer", {"other_bank": 0.6, "own_bank": 0.4}, "transfer", "uniform", "day", 1.0),
    "business_out": Flow("out", "transfer", {"other_bank": 0.6, "own_bank": 0.4}, "transfer", "uniform", "day", 1.0),
    "p2p_in": Flow("in", "transfer", {"own_bank": 0.45, "other_bank": 0.55}, "transfer", "uniform", "day", 0.8),
    "p2p_out": Flow("out", "transfer", {"own_bank": 0.5, "other_bank": 0.5}, "transfer", "uniform", "day", 0.8),
    "consumption": Flow("out", "consumption", {"merchant": 1.0}, "consumption", "uniform", "day", 1.0),
    "bill": Flow("out", "bill", {"merchant": 0.7, "government": 0.3}, "bill", "uniform", "day", 0.6),
    "cash": Flow("out", "cash", {"self": 1.0}, "cash", "uniform", "day", 0.5),
    "fee": Flow("out", "fee", {"own_bank": 1.0}, "batch", "uniform", "batch", 0.0),
    "interest": Flow("in", "interest", {"own_bank": 1.0}, "batch", "interest", "batch", 0.0),
    "loan_disbursement": Flow("in", "transfer", {"own_bank": 1.0}, "batch", "uniform", "batch", 0.0),
    "loan_repayment": Flow("out", "loan_repayment", {"own_bank": 1.0}, "batch", "repayment", "batch", 0.0),
    "invest_buy": Flow("out", "investment", {"own_bank": 1.0}, "investment", "uniform", "day", 0.3),
    "invest_sell": Flow("in", "investment", {"own_bank": 1.0}, "investment", "uniform", "day", 0.3),
    "top_up": Flow("in", "transfer", {"other_bank": 0.7, "self": 0.3}, "transfer", "uniform", "day", 0.5),
    "sweep_out": Flow("out", "transfer", {"other_bank": 0.5, "own_bank": 0.25, "merchant": 0.25},
                      "transfer", "uniform", "day", 0.5),
    "churn_out": Flow("out", "transfer", {"other_bank": 1.0}, "transfer", "uniform", "day", 0.4),
    "dress_in": Flow("in", "transfer", {"other_bank": 0.6, "self": 0.4}, "transfer", "month_end", "day", 0.0),
    "dress_out": Flow("out", "transfer", {"other_bank": 0.6, "self": 0.4}, "transfer", "month_start", "day", 0.0),
}
FLOW_NAMES: tuple[str, ...] = tuple(FLOWS)

# Share of transactions by hour of day: daytime activity, and overnight/morning batch postings.
_DAY_HOURS = np.array([1, 0.5, 0.3, 0.2, 0.2, 0.5, 1.5, 3, 5, 6, 6.5, 7, 7, 6.5, 6, 6, 6, 6, 6.5, 7, 7, 6, 4, 2])
_BATCH_HOURS = np.array([3, 4, 4, 3, 2, 2, 2, 3, 5, 6, 4, 2, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1])
_HOUR_CUM = {
    "day": np.cumsum(_DAY_HOURS) / _DAY_HOURS.sum(),
    "batch": np.cumsum(_BATCH_HOURS) / _BATCH_HOURS.sum(),
}


@dataclass(frozen=True)
class Calendar:
    """The simulated months: first instant (ms since epoch), days in month, calendar month index 0-11."""

    start_ms: np.ndarray
    days: np.ndarray
    month_of_year: np.ndarray

    @classmethod
    def from_start(cls, start_month: str, n_months: int) -> Calendar:
        first = np.datetime64(start_month, "M")
        if np.datetime64(start_month, "D") != first.astype("datetime64[D]"):
            raise ValueError(f"start_month must be the first day of a month, got {start_month!r}")
        months = first + np.arange(n_months + 1)
        start_days = months.astype("datetime64[D]")
        return cls(
            start_ms=start_days[:-1].astype("datetime64[ms]").astype(np.int64),
            days=np.diff(start_days).astype(np.int64),
            month_of_year=(months[:-1].astype(np.int64) % 12),
        )


def _lut(probs: dict[str, float], values: tuple, size: int = 4096) -> np.ndarray:
    """Lookup table for drawing codes (positions in ``values``) from a small categorical distribution.

    ``lut[(u * size).astype(int)]`` for u ~ U(0, 1) draws a code; far cheaper than searchsorted per row.
    """
    names = list(probs)
    p = np.array([probs[k] for k in names], dtype=float)
    if (p < 0).any() or p.sum() <= 0:
        raise ValueError(f"probabilities must be >= 0 with a positive sum, got {probs}")
    codes = np.array([values.index(k) for k in names], dtype=np.int8)
    cum = np.cumsum(p) / p.sum()
    return codes[np.searchsorted(cum, (np.arange(size) + 0.5) / size, side="right").clip(0, len(p) - 1)]


_HOUR_LUT_SIZE = 8192
_HOUR_LUT = {
    clock: np.searchsorted(cum, (np.arange(_HOUR_LUT_SIZE) + 0.5) / _HOUR_LUT_SIZE, side="right").clip(0, 23)
    for clock, cum in _HOUR_CUM.items()
}


def _draw(lut: np.ndarray, u: np.ndarray) -> np.ndarray:
    return lut[np.clip((u * lut.size).astype(np.int32), 0, lut.size - 1)]


def expand_flows(
    rng: np.random.Generator,
    counts: dict[str, np.ndarray],
    totals: dict[str, np.ndarray],
    lower_day: np.ndarray,
    consumption_liquid_share: np.ndarray,
    cal: Calendar,
    digital: np.ndarray,
    fixed_days: dict[str, np.ndarray],
    channels: dict,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Transactions of every flow from its (customers x months) counts and totals.

    Matrices are months x customers. ``lower_day`` (1-based) is the first day a transaction may fall on (the opening day in
    the month a customer joins); ``fixed_days`` holds each customer's payday / pension day / repayment day.
    Returns the columns cell (month * customers + customer position), ts_ms, amount, direction, channel, category,
    counterparty (codes into the schema tuples), in flow order and by cell within a flow; and the sum over each
    (month, customer) of signed amount x share of the month it was on the deposit (for the average daily balance).
    """
    n_months, n = lower_day.shape
    n_total = int(sum(int(c.sum()) for c in counts.values()))
    out = {
        "cell": np.empty(n_total, dtype=np.int64),
        "ts_ms": np.empty(n_total, dtype=np.int64),
        "amount": np.empty(n_total, dtype=np.float64),
        "direction": np.empty(n_total, dtype=np.int8),
        "channel": np.empty(n_total, dtype=np.int8),
        "category": np.empty(n_total, dtype=np.int8),
        "counterparty": np.empty(n_total, dtype=np.int8),
    }
    weighted = np.zeros(n * n_months)
    cells = np.arange(n * n_months, dtype=np.int64)
    lower = lower_day.ravel()
    pos = 0
    for name, flow in FLOWS.items():
        flat = counts[name].ravel()
        k = int(flat.sum())
        if k == 0:
            continue
        sl = slice(pos, pos + k)
        pos += k
        cell = np.repeat(cells, flat)
        month = cell // n
        cust = cell % n
        # Amounts: lognormal shares of the cell's total, so that the cell sums to its total.
        tot = totals[name].ravel()
        if flow.amount_sd > 0:
            raw = np.exp(rng.standard_normal(k, dtype=np.float32) * np.float32(flow.amount_sd)).astype(np.float64)
            sums = np.bincount(cell, weights=raw, minlength=flat.size)
            amount = raw * (tot / np.where(sums > 0, sums, 1.0))[cell]
        else:
            amount = (tot / np.maximum(flat, 1))[cell]
        amount = np.maximum(np.round(amount, 2), 0.01)
        # Day of month.
        days = cal.days[month]
        lo = lower[cell]
        if flow.day_rule == "uniform":
            day = lo + (rng.random(k, dtype=np.float32) * (days - lo + 1)).astype(np.int64)
            day = np.minimum(day, days)
        elif flow.day_rule in ("salary", "pension", "repayment"):
            base = fixed_days[flow.day_rule][cust]
            if flow.day_rule == "salary":
                # Usually the same payday; sometimes moved a day or two (weekend, holiday).
                shift = rng.random(k, dtype=np.float32)
                base = base + np.where(shift < 0.05, -1, 0) + np.where(shift > 0.95, 1, 0)
            day = np.clip(base, lo, days)
        elif flow.day_rule == "interest":
            day = np.clip(np.full(k, 21), lo, days)
        elif flow.day_rule == "month_end":
            day = np.maximum(days - (rng.random(k, dtype=np.float32) * 4).astype(np.int64), lo)
        elif flow.day_rule == "month_start":
            day = np.clip(1 + (rng.random(k, dtype=np.float32) * 5).astype(np.int64), lo, days)
        else:
            raise ValueError(f"unknown day rule {flow.day_rule!r} for flow {name!r}")
        # Time of day: an hour from the flow's clock, a uniform instant within it (one uniform for both).
        u = rng.random(k) * _HOUR_LUT_SIZE
        slot = np.minimum(u.astype(np.int32), _HOUR_LUT_SIZE - 1)
        within = ((u - slot) * 3_600_000).astype(np.int64)
        ts = cal.start_ms[month] + (day - 1) * MS_PER_DAY + _HOUR_LUT[flow.clock][slot] * 3_600_000 + within
        # Channel: digital with the customer's probability, then a channel of that set (one uniform for both).
        rule = channels[flow.channel_rule]
        d = digital[cust]
        u = rng.random(k, dtype=np.float32)
        go_digital = u < d
        u_dig = u / np.maximum(d, 1e-6)
        u_trad = (u - d) / np.maximum(1.0 - d, 1e-6)
        channel = np.where(
            go_digital,
            _draw(_lut(rule["digital"], schema.CHANNELS), u_dig),
            _draw(_lut(rule["traditional"], schema.CHANNELS), u_trad),
        )
        if len(flow.counterparty) > 1:
            cp = _draw(_lut(flow.counterparty, schema.COUNTERPARTIES), rng.random(k, dtype=np.float32))
        else:
            cp = schema.COUNTERPARTIES.index(next(iter(flow.counterparty)))
        sign = 1.0 if flow.direction == "in" else -1.0
        share = (days - day + 1) / days
        if name == "consumption":
            share = share * consumption_liquid_share.ravel()[cell]
        weighted += np.bincount(cell, weights=sign * amount * share, minlength=flat.size)
        out["cell"][sl] = cell
        out["ts_ms"][sl] = ts
        out["amount"][sl] = amount
        out["direction"][sl] = schema.DIRECTIONS.index(flow.direction)
        out["channel"][sl] = channel
        out["category"][sl] = schema.TXN_CATEGORIES.index(flow.category)
        out["counterparty"][sl] = cp
    return out, weighted.reshape(n_months, n)
