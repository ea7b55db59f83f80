"""Who the simulated bank's customers are: latent personas, their blend, demographics and static traits.

Every array here is indexed by the customer's position in its part (0..n-1). Nothing loops over customers.
A customer's behavioural parameters are a blend ``w * main + (1 - w) * second`` of two personas' parameters
(on a log scale for money, rates and ratios); ``w`` drifts linearly over the window, so members change over time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bankseg.data import schema

PERSONAS: tuple[str, ...] = (
    "elderly_saver",
    "young_digital",
    "payroll_worker",
    "small_business_owner",
    "seasonal_farmer",
    "affluent_investor",
    "credit_reliant_borrower",
    "dormant",
)
# Per-persona parameters that blend between personas month by month (the customer's behaviour).
BLENDED: tuple[str, ...] = (
    "primary_share",
    "spend_ratio",
    "consumption_per_month",
    "bills_per_month",
    "cash_per_month",
    "p2p_per_month",
    "business_flows_per_month",
    "business_turnover",
    "farm_income_share",
    "logins_per_month",
    "branch_visits_per_month",
    "complaint_rate",
    "churn_hazard",
    "invest_share",
    "wealth_growth_annual",
)
# Rates and ratios blend geometrically: a dormant customer with a trace of another persona stays nearly dormant.
LOG_BLENDED: frozenset[str] = frozenset(
    {
        "primary_share",
        "spend_ratio",
        "consumption_per_month",
        "bills_per_month",
        "cash_per_month",
        "p2p_per_month",
        "logins_per_month",
        "branch_visits_per_month",
        "complaint_rate",
        "churn_hazard",
    }
)
# Products a persona's adoption table may name (every product but the ones handled by rule).
ADOPTABLE: tuple[str, ...] = (
    "time_deposit",
    "debit_card",
    "credit_card",
    "mobile_banking",
    "wealth_management",
    "fund",
    "insurance",
    "precious_metal",
    "consumer_loan",
    "mortgage",
    "business_loan",
)
MS_PER_DAY = 86_400_000


@dataclass(frozen=True)
class Population:
    """Static traits of one part's customers plus the blend weights that drive their monthly behaviour."""

    persona: np.ndarray  # int, index into PERSONAS: the main persona
    second: np.ndarray  # int, the persona blended in
    weight: np.ndarray  # float (n, n_months): weight of the main persona each month
    blended: dict[str, np.ndarray]  # name -> float (n_months, n): month-major, as the month loop reads it
    adoption: np.ndarray  # float (n_months, n, len(ADOPTABLE)): monthly adoption hazard before multipliers
    age: np.ndarray  # float, years at the start of the window
    birth_ms: np.ndarray  # int64 ms since epoch
    gender: np.ndarray  # int index into schema.GENDERS
    city_tier: np.ndarray  # int 1..5
    occupation: np.ndarray  # int index into schema.OCCUPATIONS
    education: np.ndarray  # int index into schema.EDUCATIONS
    income: np.ndarray  # actual monthly income, CNY
    declared_income: np.ndarray  # float, NaN when missing
    wealth: np.ndarray  # target AUM at the start of the window, CNY
    join_month: np.ndarray  # int; < 0 means before the window (0 = the first simulated month)
    open_ms: np.ndarray  # int64 ms: first account opened
    digital: np.ndarray  # probability of choosing a digital channel
    salary_day: np.ndarray  # int 1..28, 0 = no salary
    has_salary: np.ndarray  # bool
    has_pension: np.ndarray  # bool
    pension_day: np.ndarray  # int
    repayment_day: np.ndarray  # int
    window_dressing: np.ndarray  # bool: month-end deposit, withdrawn early next month
    sms_fee: np.ndarray  # bool
    risk_score: np.ndarray  # float, NaN when the questionnaire was never answered
    credit_score: np.ndarray  # float, NaN for some


def _choice_by_row(rng: np.random.Generator, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Draw one category per customer from the probability row of its persona (vectorised)."""
    cum = np.cumsum(probs, axis=1)
    cum /= cum[:, -1:]
    u = rng.random(rows.size)
    return (u[:, None] > cum[rows]).sum(axis=1)


def _table(personas: dict, key: str, names: tuple, default: float = 0.0) -> np.ndarray:
    """A (persona x name) matrix from each persona's ``key`` mapping."""
    return np.array([[float(personas[p].get(key, {}).get(n, default)) for n in names] for p in PERSONAS])


def draw_population(
    rng: np.random.Generator,
    n: int,
    n_months: int,
    start_ms: int,
    month_start_ms: np.ndarray,
    population: dict,
    messy: dict,
    balances: dict,
    loans: dict,
    personas: dict,
) -> Population:
    """Draw ``n`` customers: persona blend, demographics, income, wealth, tenure and static habits."""
    missing = [p for p in PERSONAS if p not in personas]
    if missing:
        raise ValueError(f"simulator.personas lacks personas: {missing}")
    k = len(PERSONAS)
    share = np.array([float(personas[p]["share"]) for p in PERSONAS])
    if (share < 0).any() or share.sum() <= 0:
        raise ValueError(f"persona shares must be >= 0 and sum > 0, got {dict(zip(PERSONAS, share, strict=True))}")
    share = share / share.sum()
    persona = rng.choice(k, size=n, p=share)
    # The second persona: any other one that blends (``blend_partner``, default true), equally likely.
    # Dormant accounts are not a habit an active customer half-has: they blend into no one.
    partner = np.array([bool(personas[p].get("blend_partner", True)) for p in PERSONAS])
    if partner.sum() < 2:
        raise ValueError("at least two personas must have blend_partner: true")
    candidates = np.array([[q for q in np.flatnonzero(partner) if q != i] for i in range(k)], dtype=object)
    n_candidates = np.array([len(c) for c in candidates])
    table = np.full((k, int(n_candidates.max())), -1, dtype=np.int64)
    for i, c in enumerate(candidates):
        table[i, : len(c)] = c
    second = table[persona, (rng.random(n) * n_candidates[persona]).astype(np.int64)]
    a, b = population["main_weight_alpha"]
    # A persona may hold its members closer (dormant accounts barely take on another persona's habits).
    floor = np.array([float(personas[p].get("min_main_weight", population["min_main_weight"])) for p in PERSONAS])
    w_min = floor[persona]
    w0 = np.maximum(rng.beta(a, b, size=n), w_min)
    drift = rng.normal(0.0, population["drift_sd"], size=n)
    frac = np.arange(n_months) / max(n_months - 1, 1)
    weight = np.clip(w0[:, None] + drift[:, None] * frac[None, :], w_min[:, None], 1.0)

    def blend_static(values: np.ndarray, log: bool = False) -> np.ndarray:
        v = np.log(np.maximum(values, 1e-9)) if log else values
        out = w0 * v[persona] + (1 - w0) * v[second]
        return np.exp(out) if log else out

    blended: dict[str, np.ndarray] = {}
    for name in BLENDED:
        v = np.array([float(personas[p][name]) for p in PERSONAS])
        if name in LOG_BLENDED:
            lv = np.log(np.maximum(v, 1e-4))
            mix = np.exp(weight * lv[persona][:, None] + (1 - weight) * lv[second][:, None])
        else:
            mix = weight * v[persona][:, None] + (1 - weight) * v[second][:, None]
        blended[name] = np.ascontiguousarray(mix.T)
    adopt = _table(personas, "adoption", ADOPTABLE)
    wt = weight.T[:, :, None]
    adoption = wt * adopt[persona][None, :, :] + (1 - wt) * adopt[second][None, :, :]

    # Demographics: mostly the main persona's, age blended so that edges overlap.
    age_mu = np.array([personas[p]["age"][0] for p in PERSONAS], dtype=float)
    age_sd = np.array([personas[p]["age"][1] for p in PERSONAS], dtype=float)
    age = np.clip(blend_static(age_mu) + rng.normal(0, 1, n) * age_sd[persona], 18.0, 92.0)
    birth_ms = start_ms - (age * 365.25 * MS_PER_DAY).astype(np.int64)
    birth_ms = (birth_ms // MS_PER_DAY) * MS_PER_DAY
    female = np.array([personas[p]["female_share"] for p in PERSONAS])
    gender = (rng.random(n) >= female[persona]).astype(np.int8)  # GENDERS = ("F", "M")
    city_probs = np.array([personas[p]["city_tier"] for p in PERSONAS], dtype=float)
    city_tier = _choice_by_row(rng, city_probs, persona) + 1
    occupation = _choice_by_row(rng, _table(personas, "occupation", schema.OCCUPATIONS), persona)
    education = _choice_by_row(rng, _table(personas, "education", schema.EDUCATIONS), persona)
    unknown_edu = schema.EDUCATIONS.index("unknown")
    education = np.where(rng.random(n) < messy["education_unknown_rate"], unknown_edu, education)

    inc_mu = np.array([personas[p]["income"][0] for p in PERSONAS], dtype=float)
    inc_sd = np.array([personas[p]["income"][1] for p in PERSONAS], dtype=float)
    city_factor = np.asarray(population["city_income_factor"], dtype=float)[city_tier - 1]
    income = blend_static(inc_mu, log=True) * np.exp(rng.normal(0, 1, n) * inc_sd[persona]) * city_factor
    income = np.round(income, -1)
    declared = income * np.exp(rng.normal(0, messy["declared_income_noise_sd"], n))
    declared = np.where(rng.random(n) < messy["declared_income_missing_rate"], np.nan, np.round(declared, -2))
    wl_mu = np.array([personas[p]["wealth"][0] for p in PERSONAS], dtype=float)
    wl_sd = np.array([personas[p]["wealth"][1] for p in PERSONAS], dtype=float)
    wealth = blend_static(wl_mu, log=True) * np.exp(rng.normal(0, 1, n) * wl_sd[persona]) * np.sqrt(city_factor)

    # Tenure: most customers opened before the window, the rest join during it.
    pre = rng.random(n) < population["pre_window_share"]
    max_years = np.clip(np.minimum(population["max_tenure_years"], age - 18.0), 0.1, None)
    tenure_days = (rng.random(n) ** 1.5 * max_years * 365.25).astype(np.int64) + 1
    pre_open = start_ms - tenure_days * MS_PER_DAY
    join_in = rng.integers(0, n_months, size=n)
    days_in = np.diff(np.append(month_start_ms, month_start_ms[-1] + 31 * MS_PER_DAY)) // MS_PER_DAY
    open_day = (rng.random(n) * days_in[join_in]).astype(np.int64)
    in_open = month_start_ms[join_in] + open_day * MS_PER_DAY
    open_ms = np.where(pre, pre_open, in_open)
    months_before = np.floor(tenure_days / 30.44).astype(np.int64) + 1
    join_month = np.where(pre, -months_before, join_in)

    digital_offset = blend_static(np.array([personas[p]["digital_offset"] for p in PERSONAS], dtype=float))
    logit = (population["digital_age_mid"] - age) / population["digital_age_scale"] + digital_offset
    digital = 1.0 / (1.0 + np.exp(-logit))

    salary_prob = blend_static(np.array([personas[p]["salary_prob"] for p in PERSONAS], dtype=float))
    has_salary = rng.random(n) < salary_prob
    days = np.asarray(population["salary_days"])
    dw = np.asarray(population["salary_day_weights"], dtype=float)
    salary_day = np.where(has_salary, rng.choice(days, size=n, p=dw / dw.sum()), 0)
    pension_prob = blend_static(np.array([personas[p]["pension_prob"] for p in PERSONAS], dtype=float))
    has_pension = (rng.random(n) < pension_prob) & (age >= 55)
    pension_day = rng.integers(8, 16, size=n)
    lo, hi = loans["repayment_days"]
    repayment_day = rng.integers(lo, hi + 1, size=n)
    wd_prob = blend_static(np.array([personas[p]["window_dressing_prob"] for p in PERSONAS], dtype=float))
    window_dressing = rng.random(n) < wd_prob
    # A persona may override the SMS-alert take-up (dormant accounts rarely keep a paid alert service).
    sms_prob = np.array([float(personas[p].get("sms_fee_prob", balances["sms_fee_prob"])) for p in PERSONAS])
    sms_fee = rng.random(n) < sms_prob[persona]

    q_rate = blend_static(np.array([personas[p]["questionnaire_rate"] for p in PERSONAS], dtype=float))
    rs_mu = blend_static(np.array([personas[p]["risk_score"][0] for p in PERSONAS], dtype=float))
    rs_sd = np.array([personas[p]["risk_score"][1] for p in PERSONAS], dtype=float)[persona]
    risk_score = np.clip(np.round(rs_mu + rng.normal(0, 1, n) * rs_sd), 0, 100)
    risk_score = np.where(rng.random(n) < q_rate, risk_score, np.nan)
    cs_mu = blend_static(np.array([personas[p]["credit_score"][0] for p in PERSONAS], dtype=float))
    cs_sd = np.array([personas[p]["credit_score"][1] for p in PERSONAS], dtype=float)[persona]
    credit_score = np.clip(np.round(cs_mu + rng.normal(0, 1, n) * cs_sd), 300, 950)
    no_history = rng.random(n) < messy["credit_score_missing_rate"] * np.where(age < 25, 2.5, 1.0)
    credit_score = np.where(no_history, np.nan, credit_score)

    return Population(
        persona=persona,
        second=second,
        weight=weight,
        blended=blended,
        adoption=adoption,
        age=age,
        birth_ms=birth_ms,
        gender=gender,
        city_tier=city_tier,
        occupation=occupation,
        education=education,
        income=income,
        declared_income=declared,
        wealth=wealth,
        join_month=join_month,
        open_ms=open_ms,
        digital=digital,
        salary_day=salary_day,
        has_salary=has_salary,
        has_pension=has_pension,
        pension_day=pension_day,
        repayment_day=repayment_day,
        window_dressing=window_dressing,
        sms_fee=sms_fee,
        risk_score=risk_score,
        credit_score=credit_score,
    )
