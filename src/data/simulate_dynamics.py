"""Month-by-month life of the simulated bank's customers: flows, balances, products, campaigns, churn.

One Python loop over *months*; every step is vectorised over the part's customers. Per month:
1. customers whose open date falls in the month join (first deposit, starter products);
2. engagement: 1 for an active customer (less when dissatisfied), lower in a false-alarm lull, declining in a
   churn warning phase;
3. dissatisfaction: a latent, persistent level raised by triggers (a competitor's offer, a bad experience, a
   move) and by complaints. It shows months before any onset, as in a real bank: fewer logins, more complaints,
   money leaking to other banks, salary redirected elsewhere, time deposits closed to chase rates;
   churn hazard from persona, dissatisfaction, lasting frailty, product count, recent complaints, AUM trend,
   tenure and noise; an onset starts a warning phase (1-3 months, skipped for abrupt churners) then a drain
   (1-3 months) after which the customer keeps a residual balance or closes every account;
4. interactions (logins, branch visits, complaints, campaign contacts and responses);
5. product closures and adoptions (hazard rising with AUM growth, engagement and campaign response);
6. money flows (counts and totals per flow), the liquid (demand-deposit) balance, invested products, loans.
Customer states: 0 not yet joined, 1 active, 2 warning, 3 draining, 4 left with a residual, 5 closed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bankseg.data import schema
from bankseg.data.simulate_flows import FLOW_NAMES, Calendar
from bankseg.data.simulate_population import ADOPTABLE, PERSONAS, Population

P_IDX = {p: i for i, p in enumerate(schema.PRODUCTS)}
# AUM beyond the current account: where a saver's spare money goes
INVESTED: tuple[str, ...] = tuple(p for p in schema.DEFAULT_AUM_PRODUCTS if p != "demand_deposit")
TERM_LOANS: tuple[str, ...] = ("consumer_loan", "mortgage", "business_loan")
UPGRADE_PRODUCTS: tuple[str, ...] = ("wealth_management", "fund", "insurance", "precious_metal", "private_banking")
ACTIVE, WARNING, DRAINING, RESIDUAL, CLOSED = 1, 2, 3, 4, 5


@dataclass
class MonthlyHistory:
    """What the month loop produced for one part (arrays are months x customers, month-major, unless noted)."""

    counts: dict[str, np.ndarray]  # flow -> int32 number of transactions
    totals: dict[str, np.ndarray]  # flow -> float64 total amount
    liquid_start: np.ndarray  # demand-deposit balance at the start of the month (before its flows)
    balance_end: np.ndarray  # (months, customers, products) month-end balance (demand deposit: liquid)
    balance_avg: np.ndarray  # (months, customers, products) average daily balance (demand deposit: filled later)
    lower_day: np.ndarray  # first day of the month a transaction may fall on (1-based)
    consumption_liquid_share: np.ndarray  # share of consumption paid from the deposit (rest by credit card)
    interactions: dict[str, np.ndarray]  # kind -> int32 counts
    spells: dict[str, np.ndarray]  # cust, product, opened_ms, closed_ms (-1 = still open)
    mobile_since_ms: np.ndarray  # per customer, -1 = never
    hazard: np.ndarray  # float32 monthly churn-onset hazard (NaN when not a customer)
    upgrade_hazard: np.ndarray  # float32 probability of opening a higher-value product in the month
    state: np.ndarray  # int8 customer state
    engagement: np.ndarray  # float32
    onset_month: np.ndarray  # per customer, -1 = none
    abrupt: np.ndarray  # per customer bool
    frailty: np.ndarray  # per customer
    dissatisfaction: np.ndarray  # float32 latent dissatisfaction at the month's end
    phase_left: np.ndarray  # int8 months left in the warning or drain phase entering the next month (0 = none)
    target_wealth: np.ndarray  # float32 the wealth a customer's money reverts to (the latent driver of AUM)
    salary_redirected: np.ndarray  # per customer bool: salary moved to another bank during the window


def _poisson(rng: np.random.Generator, lam: np.ndarray) -> np.ndarray:
    return rng.poisson(np.maximum(lam, 0.0)).astype(np.int32)


def _noise(rng: np.random.Generator, n: int, sd: float) -> np.ndarray:
    """Mean-one lognormal noise."""
    return np.exp(rng.normal(-0.5 * sd * sd, sd, n))


def _gamma_total(rng: np.random.Generator, count: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Total of ``count`` amounts with the given mean each (gamma, shape 2 per transaction); 0 when count is 0."""
    shape = np.maximum(count, 1) * 2.0
    return np.where(count > 0, mean * rng.gamma(shape) / 2.0, 0.0)


class _Spells:
    """Product spells (opened, closed) collected as the loop goes."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, cust: np.ndarray, prod: np.ndarray, opened: np.ndarray, closed: np.ndarray) -> None:
        if cust.size:
            self.parts.append((cust, prod, opened, closed))

    def arrays(self) -> dict[str, np.ndarray]:
        if not self.parts:
            e = np.zeros(0, dtype=np.int64)
            return {"cust": e, "product": e, "opened_ms": e, "closed_ms": e}
        cols = [np.concatenate([p[i] for p in self.parts]).astype(np.int64) for i in range(4)]
        return dict(zip(("cust", "product", "opened_ms", "closed_ms"), cols, strict=True))


def run_months(
    rng: np.random.Generator,
    pop: Population,
    cal: Calendar,
    market: np.ndarray,
    *,
    population: dict,
    balances: dict,
    loans: dict,
    amounts: dict,
    churn: dict,
    campaigns: dict,
    adoption: dict,
    interactions: dict,
    personas: dict,
    seasons: dict,
) -> MonthlyHistory:
    """Simulate the part's customers month by month; ``market`` is the common monthly market swing."""
    n = pop.income.size
    m_total = cal.days.size
    n_prod = len(schema.PRODUCTS)
    ms_day = 86_400_000

    # Histories are month-major: the loop writes one contiguous row per month.
    counts = {f: np.zeros((m_total, n), dtype=np.int32) for f in FLOW_NAMES}
    totals = {f: np.zeros((m_total, n), dtype=np.float64) for f in FLOW_NAMES}
    kinds = schema.INTERACTION_KINDS
    inter = {k: np.zeros((m_total, n), dtype=np.int32) for k in kinds}
    liquid_start = np.zeros((m_total, n))
    bal_end = np.zeros((m_total, n, n_prod))
    bal_avg = np.zeros((m_total, n, n_prod))
    lower_day = np.ones((m_total, n), dtype=np.int64)
    cons_liquid = np.ones((m_total, n))
    hazard_hist = np.full((m_total, n), np.nan, dtype=np.float32)
    upgrade_hist = np.full((m_total, n), np.nan, dtype=np.float32)
    state_hist = np.zeros((m_total, n), dtype=np.int8)
    eng_hist = np.zeros((m_total, n), dtype=np.float32)
    dis_hist = np.zeros((m_total, n), dtype=np.float32)
    phase_left_hist = np.zeros((m_total, n), dtype=np.int8)
    target_hist = np.zeros((m_total, n), dtype=np.float32)
    aum_hist = np.zeros((m_total, n))
    spells = _Spells()

    held = np.zeros((n, n_prod), dtype=bool)
    opened = np.zeros((n, n_prod), dtype=np.int64)
    mobile_since = np.full(n, -1, dtype=np.int64)
    inv_idx = np.array([P_IDX[p] for p in INVESTED])
    loan_idx = np.array([P_IDX[p] for p in TERM_LOANS])
    cc = P_IDX["credit_card"]
    dd = P_IDX["demand_deposit"]
    inv_bal = np.zeros((n, len(INVESTED)))
    inv_weight = rng.gamma(1.0, size=(n, len(INVESTED))) * np.array([1.5, 1.2, 0.8, 0.6, 0.3, 3.0])
    loan_out = np.zeros((n, len(TERM_LOANS)))
    loan_pay = np.zeros((n, len(TERM_LOANS)))
    loan_left = np.zeros((n, len(TERM_LOANS)), dtype=np.int64)
    loan_rate = np.array([loans[p]["rate"] for p in TERM_LOANS]) / 12.0
    card_prev = np.zeros(n)
    liquid = np.zeros(n)
    target = pop.wealth.copy()
    # A spender keeps at least a few weeks of spending on the account (transaction balance).
    buffer = balances["transaction_balance_months"] * pop.income * pop.blended["spend_ratio"][0]
    dress_prev = np.zeros(n)

    state = np.zeros(n, dtype=np.int8)
    phase_k = np.zeros(n, dtype=np.int64)
    warn_len = np.zeros(n, dtype=np.int64)
    drain_len = np.ones(n, dtype=np.int64)
    drain_from = np.zeros(n)
    residual_share = np.zeros(n)
    onset_month = np.full(n, -1, dtype=np.int64)
    abrupt = np.zeros(n, dtype=bool)
    lull_left = np.zeros(n, dtype=np.int64)
    lull_eng = np.ones(n)
    # Lasting propensity to leave: a mean-one lognormal multiplier, so persona hazards keep their meaning.
    frailty = rng.normal(-0.5 * churn["frailty_sd"] ** 2, churn["frailty_sd"], n)
    dis_cfg = churn["dissatisfaction"]
    dissatisfaction = np.zeros(n)
    grievance = np.zeros(n)
    redirected = np.zeros(n, dtype=bool)
    responded_ago = np.full(n, 99, dtype=np.int64)  # months since the last campaign response
    complaints_recent = np.zeros((n, 3), dtype=np.int32)
    pf = np.asarray(churn["product_factor"], dtype=float)
    w_eng = np.asarray(churn["warning_engagement"], dtype=float)
    adopt_idx = np.array([P_IDX[p] for p in ADOPTABLE])
    upgrade_cols = np.array([ADOPTABLE.index(p) for p in UPGRADE_PRODUCTS if p in ADOPTABLE])
    closure = np.zeros(n_prod)
    for p, h in adoption["closure"].items():
        closure[P_IDX[p]] = h
    harvest = np.asarray(seasons["harvest_weights"], dtype=float)
    harvest = harvest / harvest.sum()
    planting = np.asarray(seasons["planting_weights"], dtype=float)
    planting = planting / planting.sum()
    holding_p = np.array(
        [[float(personas[p]["holdings"].get(q, 0.0)) for q in schema.PRODUCTS] for p in PERSONAS]
    )
    w0 = pop.weight[:, 0:1]
    start_holding_p = w0 * holding_p[pop.persona] + (1 - w0) * holding_p[pop.second]
    bonus = np.where(rng.random(n) < population["bonus_prob"], rng.uniform(*population["bonus_months_of_salary"], n), 0)
    join_lo, join_hi = balances["join_deposit_share"]

    def open_loans(who: np.ndarray, j: int, months_into_term: np.ndarray | None) -> np.ndarray:
        """Start a term loan for customers ``who`` (indices); returns the principal disbursed now."""
        cfg = loans[TERM_LOANS[j]]
        principal = pop.income[who] * rng.uniform(*cfg["principal_months"], who.size)
        term = rng.choice(np.asarray(cfg["terms"]), size=who.size)
        r = loan_rate[j]
        pay = principal * r / (1 - (1 + r) ** (-term.astype(float)))
        paid = np.zeros(who.size, dtype=np.int64) if months_into_term is None else months_into_term % term
        # Outstanding after `paid` annuity payments.
        out = principal * (1 + r) ** paid - pay * ((1 + r) ** paid - 1) / r
        loan_out[who, j] = np.maximum(out, 0.0)
        loan_pay[who, j] = pay
        loan_left[who, j] = term - paid
        return principal

    def start_holdings(who: np.ndarray, t_ms: np.ndarray, before_window: bool) -> None:
        """Products a customer holds at the start (before the window) or right after joining (during it)."""
        k = who.size
        if before_window:
            p = start_holding_p[who]
        else:
            p = np.zeros((k, n_prod))
            p[:, P_IDX["debit_card"]] = 0.9
            p[:, P_IDX["mobile_banking"]] = pop.digital[who]
        has = rng.random((k, n_prod)) < p
        has[:, dd] = True
        has[:, P_IDX["payroll"]] = pop.has_salary[who]
        has[:, P_IDX["private_banking"]] = False
        # Open dates: demand deposit at the first opening; others spread between then and the window start.
        span = np.maximum(t_ms - pop.open_ms[who], 0)
        when = pop.open_ms[who][:, None] + (rng.random((k, n_prod)) * span[:, None]).astype(np.int64)
        when = (when // ms_day) * ms_day
        when[:, dd] = pop.open_ms[who]
        held[who] = has
        opened[who] = np.where(has, when, 0)
        mb = P_IDX["mobile_banking"]
        mobile_since[who] = np.where(has[:, mb], when[:, mb], -1)
        for j in range(len(TERM_LOANS)):
            got = who[has[:, loan_idx[j]]]
            if got.size and before_window:
                open_loans(got, j, rng.integers(0, 400, got.size))
            elif got.size:
                open_loans(got, j, None)

    pre = np.flatnonzero(pop.join_month < 0)
    start_holdings(pre, np.full(pre.size, cal.start_ms[0]), before_window=True)
    state[pre] = ACTIVE
    has_inv = held[pre][:, inv_idx].any(axis=1)
    share0 = np.where(has_inv, pop.blended["invest_share"][0, pre], 0.0)
    inv_total = pop.wealth[pre] * share0
    w = inv_weight[pre] * held[pre][:, inv_idx]
    w_sum = w.sum(axis=1, keepdims=True)
    inv_bal[pre] = np.where(w_sum > 0, w / np.where(w_sum > 0, w_sum, 1) * inv_total[:, None], 0.0)
    liquid[pre] = pop.wealth[pre] - inv_total

    for t in range(m_total):
        moy = cal.month_of_year[t]
        days = cal.days[t]
        t_ms = cal.start_ms[t]
        # --- 1. joiners
        joiners = np.flatnonzero(pop.join_month == t)
        start_holdings(joiners, pop.open_ms[joiners], before_window=False)
        state[joiners] = ACTIVE
        open_day = (pop.open_ms[joiners] - t_ms) // ms_day + 1
        lower_day[t, joiners] = open_day
        first_deposit = np.zeros(n)
        first_deposit[joiners] = pop.wealth[joiners] * rng.uniform(join_lo, join_hi, joiners.size)
        liquid_start[t] = liquid
        alive = (state >= ACTIVE) & (state <= RESIDUAL)
        act = state == ACTIVE

        # --- 2. engagement
        lull_start = act & (lull_left == 0) & (rng.random(n) < churn["lull_prob"])
        lull_left = np.where(lull_start, rng.integers(churn["lull_months"][0], churn["lull_months"][1] + 1, n), lull_left)
        lull_eng = np.where(lull_start, rng.uniform(*churn["lull_engagement"], n), lull_eng)
        in_lull = act & (lull_left > 0)

        # --- 3. churn hazard and onset (uses the state at the start of the month)
        n_products = held.sum(axis=1)
        prod_factor = pf[np.clip(n_products, 1, pf.size) - 1]
        aum_prev = aum_hist[t - 1] if t >= 1 else liquid + inv_bal.sum(axis=1)
        aum_back = aum_hist[t - 4] if t >= 4 else (aum_hist[0] if t >= 1 else aum_prev)
        trend = np.log((aum_prev + 1000.0) / (aum_back + 1000.0))
        tenure_m = t - pop.join_month
        # Dissatisfaction builds up over months from a grievance (a trigger: a competitor's offer, a bad
        # experience, a move; or last month's complaint), persists and fades. The hazard answers last month's
        # level, whose signs an observer at the month's start has already seen.
        dis_before = dissatisfaction
        trigger = act & (rng.random(n) < dis_cfg["trigger_prob"])
        grievance = (
            dis_cfg["grievance_persistence"] * grievance
            + np.where(trigger, rng.exponential(dis_cfg["trigger_size"], n), 0.0)
            + dis_cfg["complaint_size"] * (complaints_recent[:, 0] > 0)
        )
        dissatisfaction = dis_cfg["persistence"] * dissatisfaction + (1.0 - dis_cfg["persistence"]) * grievance
        dissatisfaction = np.where(alive, np.minimum(dissatisfaction, dis_cfg["max"]), 0.0)
        h = (
            pop.blended["churn_hazard"][t]
            * np.exp(frailty + dis_cfg["hazard_beta"] * dis_before + rng.normal(0.0, churn["monthly_noise_sd"], n))
            * prod_factor
            * np.where(complaints_recent.sum(axis=1) > 0, churn["complaint_factor"], 1.0)
            * np.exp(-churn["trend_beta"] * np.minimum(trend, 0.0))
            * np.where(tenure_m < 12, churn["new_customer_factor"], 1.0)
        )
        h = np.minimum(h, churn["max_hazard"])
        hazard_hist[t] = np.where(alive & (state <= DRAINING), h, np.nan)
        onset = act & (rng.random(n) < h)
        onset_month[onset] = t
        is_abrupt = onset & (rng.random(n) < churn["abrupt_prob"])
        abrupt |= is_abrupt
        wl_lo, wl_hi = churn["warning_months"]
        dl_lo, dl_hi = churn["drain_months"]
        warn_len = np.where(onset, rng.integers(wl_lo, wl_hi + 1, n), warn_len)
        drain_len = np.where(onset, rng.integers(dl_lo, dl_hi + 1, n), drain_len)
        residual_share = np.where(onset, rng.uniform(*churn["drain_residual_share"], n), residual_share)
        state = np.where(onset & ~is_abrupt, WARNING, state).astype(np.int8)
        state = np.where(is_abrupt, DRAINING, state).astype(np.int8)
        phase_k = np.where(onset, 0, phase_k)
        lull_left = np.where(onset, 0, lull_left)
        in_lull &= ~onset

        eng = np.zeros(n)
        eng[state == ACTIVE] = 1.0 / (1.0 + dis_cfg["engagement_beta"] * dissatisfaction[state == ACTIVE])
        eng = np.where(in_lull, lull_eng, eng)
        warn = state == WARNING
        eng[warn] = w_eng[np.minimum(phase_k[warn], w_eng.size - 1)]
        eng[state == DRAINING] = 0.15
        eng[state == RESIDUAL] = churn["residual_engagement"]
        eng_hist[t] = eng
        state_hist[t] = state
        drain_first = (state == DRAINING) & (phase_k == 0)
        drain_from = np.where(drain_first, liquid + inv_bal.sum(axis=1), drain_from)

        # --- 4. interactions
        b = pop.blended
        mb = held[:, P_IDX["mobile_banking"]]
        fed_up = np.exp(-dis_cfg["login_beta"] * dissatisfaction)  # a dissatisfied customer opens the app less
        inter["app_login"][t] = _poisson(rng, b["logins_per_month"][t] * eng * fed_up * mb * (0.3 + pop.digital))
        bv_factor = 1.0 - (1.0 - interactions["branch_visit_digital_factor"]) * pop.digital
        inter["branch_visit"][t] = _poisson(rng, b["branch_visits_per_month"][t] * np.maximum(eng, 0.2 * alive) * bv_factor)
        c_rate = b["complaint_rate"][t] * np.where(warn | (state == DRAINING), churn["complaint_boost"], 1.0)
        c_rate = c_rate * np.exp(dis_cfg["complaint_beta"] * dissatisfaction)
        complaints = _poisson(rng, c_rate * alive)
        inter["complaint"][t] = complaints
        complaints_recent = np.roll(complaints_recent, 1, axis=1)
        complaints_recent[:, 0] = complaints
        aum_now = liquid + inv_bal.sum(axis=1)
        p_contact = campaigns["contact_rate"] * (np.maximum(aum_now, 1000.0) / 50_000.0) ** campaigns["wealth_targeting"]
        contacted = (state >= ACTIVE) & (state <= WARNING) & (rng.random(n) < np.minimum(p_contact, 0.6))
        responded = contacted & (rng.random(n) < campaigns["response_rate"] * eng * (0.5 + pop.digital))
        inter["campaign_contact"][t] = contacted
        inter["campaign_response"][t] = responded
        responded_ago = np.where(responded, 0, responded_ago + 1)

        # --- 5. closures and adoptions (active customers); churners close their payroll and investments
        close_h = np.broadcast_to(closure[None, :], (n, n_prod)).copy()
        td = P_IDX["time_deposit"]
        close_h[:, td] *= 1.0 + dis_cfg["time_deposit_closure_beta"] * dissatisfaction  # chasing a better rate
        close = act[:, None] & held & (rng.random((n, n_prod)) < close_h)
        close[:, loan_idx] |= held[:, loan_idx] & (loan_left <= 0)
        close[:, dd] = False
        # A dissatisfied payroll customer asks the employer to pay the salary into another bank.
        pr = P_IDX["payroll"]
        redirect = (
            act & held[:, pr] & (dissatisfaction >= dis_cfg["salary_redirect_threshold"])
            & (rng.random(n) < dis_cfg["salary_redirect_prob"])
        )
        close[:, pr] = redirect
        redirected |= redirect
        drain_close = np.zeros_like(close)
        drain_close[:, inv_idx] = drain_first[:, None] & held[:, inv_idx]
        drain_close[:, P_IDX["payroll"]] = drain_first & held[:, P_IDX["payroll"]]
        close |= drain_close
        growth = np.clip(trend, -1.0, 1.0)
        # A response lifts adoption in its month and, fading, in the next ones (the customer decides in weeks).
        lift = 1.0 + (campaigns["response_lift"] - 1.0) * campaigns["response_fade"] ** responded_ago
        mult = (
            np.exp(adoption["growth_beta"] * growth)
            * np.exp(adoption["engagement_beta"] * (eng - 1.0))
            * np.where(responded_ago < campaigns["response_months"], lift, 1.0)
        )
        a_h = np.minimum(pop.adoption[t] * mult[:, None], 0.9)
        a_h = np.where(act[:, None] & ~held[:, adopt_idx], a_h, 0.0)
        new = np.zeros((n, n_prod), dtype=bool)
        new[:, adopt_idx] = rng.random(a_h.shape) < a_h
        pb = P_IDX["private_banking"]
        new[:, pb] = act & ~held[:, pb] & (aum_now >= adoption["private_banking_aum"]) & (rng.random(n) < 0.1 * mult)
        up_h = a_h[:, upgrade_cols]
        upgrade_hist[t] = np.where(act, 1.0 - np.prod(1.0 - up_h, axis=1), np.nan)
        # Record closures (closing day in this month), then open the new products.
        ci, cj = np.nonzero(close & held)
        close_ms = t_ms + (rng.random(ci.size) * days).astype(np.int64) * ms_day
        close_ms = np.maximum(close_ms, opened[ci, cj] + ms_day)
        spells.add(ci, cj, opened[ci, cj], close_ms)
        held[ci, cj] = False
        sold_on_close = (inv_bal * close[:, inv_idx]).sum(axis=1)
        inv_bal = np.where(close[:, inv_idx], 0.0, inv_bal)
        loan_out = np.where(close[:, loan_idx], 0.0, loan_out)
        oi, oj = np.nonzero(new)
        lo_day = lower_day[t, oi]
        open_ms = t_ms + (lo_day - 1 + (rng.random(oi.size) * (days - lo_day + 1)).astype(np.int64)) * ms_day
        held[oi, oj] = True
        opened[oi, oj] = open_ms
        mbi = P_IDX["mobile_banking"]
        first_mobile = (oj == mbi) & (mobile_since[oi] < 0)
        mobile_since[oi[first_mobile]] = open_ms[first_mobile]
        disbursed = np.zeros(n)
        for j in (0, 2):  # consumer and business loans pay out to the account; a mortgage pays the seller
            got = oi[oj == loan_idx[j]]
            if got.size:
                disbursed[got] += open_loans(got, j, None)
        got = oi[oj == loan_idx[1]]
        if got.size:
            open_loans(got, 1, None)

        # --- 6. flows
        def put(flow: str, count: np.ndarray, total: np.ndarray, t: int = t) -> None:
            total = np.where(count > 0, np.maximum(total, 0.01 * count), 0.0)
            counts[flow][t] = count
            totals[flow][t] = total

        earning = (state == ACTIVE) | (state == WARNING)
        income = pop.income * earning
        # Once the salary goes elsewhere, so does most of the customer's banking.
        primary = b["primary_share"][t] * np.where(redirected, dis_cfg["redirected_primary_share"], 1.0)
        payroll = held[:, P_IDX["payroll"]] & earning
        sal = np.where(payroll, income * rng.uniform(0.97, 1.03, n), 0.0)
        if moy == population["bonus_month"] - 1:
            sal = sal * (1.0 + bonus)
        put("salary", payroll.astype(np.int32), sal)
        pension = pop.has_pension & ~payroll & earning
        put("pension", pension.astype(np.int32), np.where(pension, income, 0.0))
        covered = np.minimum(payroll + pension, 1)
        rest = 1.0 - covered
        farm_frac = b["farm_income_share"][t] * rest
        farming = (farm_frac > 0) & earning
        farm_n = np.where(farming, np.maximum(_poisson(rng, np.full(n, seasons["harvest_txns"] * harvest[moy] * 12)), 1), 0)
        put("farm_income", farm_n, primary * farm_frac * income * 12 * harvest[moy] * _noise(rng, n, 0.3))
        rest = rest - farm_frac
        bus_rate = b["business_flows_per_month"][t]
        turnover = b["business_turnover"][t]
        bus_frac = np.where(bus_rate > 0, np.minimum(turnover, 1.0), 0.0) * rest
        bus_in_n = _poisson(rng, bus_rate * np.maximum(eng, 0.1 * alive) * (bus_frac > 0))
        bus_out_n = _poisson(rng, bus_rate * np.maximum(eng, 0.1 * alive) * (bus_frac > 0))
        bus_sd = balances["business_flow_sd"]
        # Turnover swings month to month, but money in and out move together (margins are steadier).
        swing = _noise(rng, n, bus_sd)
        base = primary * income * bus_frac * swing
        put("business_in", bus_in_n, base * np.maximum(turnover, 1.0) * _noise(rng, n, 0.1))
        put("business_out", bus_out_n, base * np.maximum(turnover - 1.0, 0.2) * _noise(rng, n, 0.1))
        p2p_frac = rest - bus_frac
        p2p_rate = b["p2p_per_month"][t]
        # Income not paid as salary, pension, harvest or business arrives as transfers (at least one a month).
        p2p_in_n = _poisson(rng, p2p_rate * eng) + ((primary * p2p_frac * income >= 500.0) & earning)
        p2p_each = amounts["p2p_income_share"] * pop.income
        put("p2p_in", p2p_in_n, primary * p2p_frac * income + _gamma_total(rng, p2p_in_n, p2p_each) * 0.5)
        p2p_out_n = _poisson(rng, p2p_rate * eng)
        put("p2p_out", p2p_out_n, _gamma_total(rng, p2p_out_n, p2p_each))

        cons_n = _poisson(rng, b["consumption_per_month"][t] * eng)
        # Spending comes out of what is left after loan repayments.
        disposable = np.maximum(pop.income - loan_pay.sum(axis=1) * held[:, loan_idx].any(axis=1), 0.3 * pop.income)
        cons = b["spend_ratio"][t] * disposable * np.maximum(primary, covered) * eng * _noise(rng, n, 0.25)
        plant_n = _poisson(rng, 3 * planting[moy] * 12 * (farm_frac > 0) * eng)
        plant = farm_frac * pop.income * 12 * seasons["planting_spend_share"] * planting[moy] * eng
        cons_total = np.where(cons_n > 0, cons, 0.0) + np.where(plant_n > 0, plant, 0.0)
        put("consumption", cons_n + plant_n, cons_total)
        bill_n = _poisson(rng, b["bills_per_month"][t] * np.maximum(eng, 0.3 * alive))
        put("bill", bill_n, _gamma_total(rng, bill_n, np.full(n, float(amounts["bill"]))))
        cash_n = _poisson(rng, b["cash_per_month"][t] * eng)
        put("cash", cash_n, _gamma_total(rng, cash_n, np.full(n, float(amounts["cash"]))))
        sms = pop.sms_fee & alive
        card_fee = (moy == 0) & held[:, P_IDX["debit_card"]] & alive
        fee_n = sms.astype(np.int32) + card_fee
        put("fee", fee_n, sms * balances["sms_fee"] + card_fee * amounts["fee_annual_card"])
        if moy in (2, 5, 8, 11):
            interest = np.round(liquid * balances["demand_interest_rate_annual"] / 4.0, 2)
            put("interest", (alive & (interest >= 0.01)).astype(np.int32), interest)

        # Loans: annuity repayments on term loans, last month's statement on the credit card.
        has_loan = held[:, loan_idx] & (loan_left > 0)
        pay = np.where(has_loan, np.minimum(loan_pay, loan_out * (1 + loan_rate)), 0.0)
        pay = np.where(has_loan & (loan_left == 1), loan_out * (1 + loan_rate), pay)
        loan_out = np.where(has_loan, np.maximum(loan_out * (1 + loan_rate) - pay, 0.0), loan_out)
        loan_left = np.where(has_loan, loan_left - 1, loan_left)
        card_pay = np.where(held[:, cc] & alive, card_prev, 0.0)
        repay_n = has_loan.sum(axis=1).astype(np.int32) + (card_pay > 0.01)
        put("loan_repayment", repay_n, pay.sum(axis=1) + card_pay)
        put("loan_disbursement", (disbursed > 0).astype(np.int32), disbursed)
        card_bal = np.where(held[:, cc] & alive, population["credit_card_share"] * cons_total, 0.0)
        card_prev = card_bal

        put("dress_out", (dress_prev > 0).astype(np.int32), dress_prev)
        put("top_up", (first_deposit > 0).astype(np.int32), first_deposit)

        def flow_sum(names: tuple[str, ...], t: int = t) -> np.ndarray:
            return sum(totals[f][t] for f in names)

        inflow = flow_sum(("salary", "pension", "farm_income", "business_in", "p2p_in", "loan_disbursement",
                           "top_up", "interest"))
        outflow = flow_sum(("business_out", "p2p_out", "bill", "cash", "fee", "loan_repayment", "dress_out"))
        cons_liquid[t] = np.where(held[:, cc], 1.0 - population["credit_card_share"], 1.0)
        outflow = outflow + cons_total * cons_liquid[t]
        liquid_pre = liquid + inflow - outflow

        # Invested products: market return, closures sold, rebalancing towards the target share.
        ret = balances["invest_return_annual"] / 12.0 + market[t] * np.array([0.0, 0.3, 1.0, 0.1, 0.8, 0.5])
        inv_bal = inv_bal * (1.0 + ret)
        liquid_pre = liquid_pre + sold_on_close
        sell = sold_on_close.copy()
        buy = np.zeros(n)
        holds_inv = held[:, inv_idx]
        inv_total = inv_bal.sum(axis=1)
        share = np.where(holds_inv.any(axis=1) & act, b["invest_share"][t], 0.0)
        move = balances["rebalance_speed"] * (share * (liquid_pre + inv_total) - inv_total)
        move = np.where(warn, -0.5 * inv_total, move)
        move = np.where(state >= DRAINING, -inv_total, move)
        move = np.clip(move, -inv_total, np.maximum(liquid_pre, 0.0))
        move = np.where(np.abs(move) >= balances["min_transfer"], move, 0.0)
        move = np.where(state >= DRAINING, -inv_total, move)
        w = inv_weight * holds_inv
        w_sum = w.sum(axis=1, keepdims=True)
        alloc = np.where(w_sum > 0, w / np.where(w_sum > 0, w_sum, 1.0), 0.0)
        frac_sell = np.where(inv_total > 0, np.minimum(-move, inv_total) / np.where(inv_total > 0, inv_total, 1.0), 0.0)
        inv_bal = np.where((move > 0)[:, None], inv_bal + alloc * move[:, None], inv_bal * (1.0 - frac_sell[:, None]))
        buy += np.maximum(move, 0.0)
        sell += np.maximum(-move, 0.0)
        liquid_pre = liquid_pre - move

        # Wealth target: drifts; reversion of liquid wealth towards it; lulls, big withdrawals, churn outflows.
        growth_m = b["wealth_growth_annual"][t] / 12.0
        target = target * np.exp(growth_m + rng.normal(0, balances["wealth_noise_sd"], n) * 0.25)
        aum_pre = liquid_pre + inv_bal.sum(axis=1)
        x = balances["reversion"] * (np.maximum(target, buffer) - aum_pre) + rng.normal(0, balances["wealth_noise_sd"], n) * target
        # Customers who mostly bank elsewhere rarely move money here.
        p_move = balances["reversion_prob"] * np.minimum(1.0, 2.0 * primary)
        x = np.where(act & ~in_lull & (rng.random(n) < p_move), x, 0.0)
        x = np.where(np.abs(x) >= balances["min_transfer"], x, 0.0)
        big = act & (rng.random(n) < balances["big_withdrawal_prob"])
        big_amt = np.where(big, rng.uniform(*balances["big_withdrawal_share"], n) * aum_pre, 0.0)
        # A big withdrawal is paid from liquid money first, then from investments.
        from_inv = np.minimum(np.maximum(big_amt - np.maximum(liquid_pre, 0.0), 0.0), inv_bal.sum(axis=1))
        inv_sum = inv_bal.sum(axis=1)
        fs = np.where(inv_sum > 0, from_inv / np.where(inv_sum > 0, inv_sum, 1.0), 0.0)
        inv_bal = inv_bal * (1.0 - fs[:, None])
        sell += from_inv
        liquid_pre = liquid_pre + from_inv
        target = np.where(big, target * (1.0 - big_amt / np.maximum(aum_pre, 1.0)), target)
        # A false alarm: money moves to another bank at the start of a lull, and comes back later (reversion).
        lull_out = np.where(lull_start & in_lull,
                            rng.uniform(*churn["lull_outflow_share"], n) * np.maximum(liquid_pre, 0.0), 0.0)
        sweep = np.maximum(-x, 0.0) + big_amt + lull_out
        top = np.maximum(x, 0.0)
        churn_out = np.zeros(n)
        churn_out = np.where(warn, rng.uniform(*churn["warning_outflow_share"], n) * np.maximum(liquid_pre, 0.0), churn_out)
        # A dissatisfied customer already moves part of the money to another bank, before deciding to leave.
        leak = dis_cfg["leak_share"] * (1.0 - np.exp(-dissatisfaction)) * rng.uniform(0.5, 1.5, n)
        churn_out = np.where((state == ACTIVE) & ~in_lull, leak * np.maximum(liquid_pre, 0.0), churn_out)
        churn_out = np.where(np.abs(churn_out) >= balances["min_transfer"], churn_out, 0.0)
        drain = state == DRAINING
        keep = drain_from * (residual_share + (1.0 - residual_share) * (1.0 - (phase_k + 1) / drain_len))
        keep = np.maximum(keep, 0.0)
        churn_out = np.where(drain, np.maximum(liquid_pre - keep, 0.0), churn_out)
        liquid_new = liquid_pre + top - sweep - churn_out
        # An account cannot go below zero: a short customer moves money in.
        short = np.where(alive & (liquid_new < 0), buffer * np.where(act, 1.0, 0.1) - liquid_new, 0.0)
        top = top + short
        liquid_new = liquid_new + short
        # Whatever a closed account still holds leaves it.
        closing = drain & (phase_k + 1 >= drain_len) & (rng.random(n) < churn["close_prob"])
        churn_out = churn_out + np.where(closing, liquid_new, 0.0)
        liquid_new = np.where(closing, 0.0, liquid_new)
        # Month-end window dressing (月末存月初取) by a few customers.
        dress = pop.window_dressing & act
        dress_amt = np.where(dress, rng.uniform(*balances["window_dressing_share"], n) * target, 0.0)
        dress_amt = np.round(dress_amt, -2)
        put("dress_in", (dress_amt > 0).astype(np.int32), dress_amt)
        dress_prev = dress_amt
        liquid_new = liquid_new + dress_amt

        put("invest_buy", (buy > 0).astype(np.int32), buy)
        put("invest_sell", (sell > 0).astype(np.int32) + (sell > 100_000), sell)
        top_n = (top > 0).astype(np.int32) + (top > 50_000)
        put("top_up", counts["top_up"][t] + top_n, totals["top_up"][t] + top)
        sweep_n = (sweep > 0).astype(np.int32) + (sweep > 50_000)
        put("sweep_out", sweep_n, sweep)
        churn_n = (churn_out > 0).astype(np.int32) + (churn_out > 20_000) + (churn_out > 200_000)
        put("churn_out", churn_n, churn_out)

        # --- balances at month end
        prev_inv = bal_end[t - 1][:, inv_idx] if t else inv_bal
        prev_loan = bal_end[t - 1][:, loan_idx] if t else loan_out
        be = bal_end[t]
        be[:, dd] = np.where(alive, np.maximum(liquid_new, 0.0), 0.0)
        be[:, inv_idx] = inv_bal
        be[:, loan_idx] = loan_out
        be[:, cc] = card_bal
        ba = bal_avg[t]
        ba[:, inv_idx] = 0.5 * (prev_inv + inv_bal)
        ba[:, loan_idx] = 0.5 * (prev_loan + loan_out)
        ba[:, cc] = 0.5 * card_bal
        # Not yet joined: nothing at all.
        not_yet = state == 0
        be[not_yet] = 0.0
        ba[not_yet] = 0.0
        liquid = np.where(alive, np.maximum(liquid_new, 0.0), 0.0)
        aum_hist[t] = liquid + inv_bal.sum(axis=1)
        dis_hist[t] = dissatisfaction
        target_hist[t] = target

        # --- phase transitions at month end
        lull_left = np.maximum(lull_left - 1, 0)
        phase_k = np.where((state == WARNING) | (state == DRAINING), phase_k + 1, phase_k)
        # Some customers in a warning phase change their mind (a better offer here, the grievance fades).
        recover = (state == WARNING) & (rng.random(n) < churn["warning_recover_prob"])
        state = np.where(recover, ACTIVE, state).astype(np.int8)
        onset_month = np.where(recover, -1, onset_month)
        dissatisfaction = np.where(recover, 0.5 * dissatisfaction, dissatisfaction)
        grievance = np.where(recover, 0.0, grievance)
        phase_k = np.where(recover, 0, phase_k)
        to_drain = (state == WARNING) & (phase_k >= warn_len)
        state = np.where(to_drain, DRAINING, state).astype(np.int8)
        phase_k = np.where(to_drain, 0, phase_k)
        done = (state == DRAINING) & (phase_k >= drain_len) & ~to_drain
        state = np.where(done & closing, CLOSED, np.where(done, RESIDUAL, state)).astype(np.int8)
        in_phase = (state == WARNING) | (state == DRAINING)
        left = np.where(state == WARNING, warn_len - phase_k, drain_len - phase_k)
        phase_left_hist[t] = np.where(in_phase, np.clip(left, 0, 127), 0)
        # Closing customers close every product at month end.
        ci, cj = np.nonzero(closing[:, None] & held)
        end_ms = np.full(ci.size, t_ms + (days - 1) * ms_day)
        spells.add(ci, cj, opened[ci, cj], np.maximum(end_ms, opened[ci, cj] + ms_day))
        held[closing] = False
        inv_bal[closing] = 0.0
        loan_out[closing] = 0.0
        card_prev[closing] = 0.0
        dress_prev[closing] = 0.0

    oi, oj = np.nonzero(held)
    spells.add(oi, oj, opened[oi, oj], np.full(oi.size, -1, dtype=np.int64))
    return MonthlyHistory(
        counts=counts,
        totals=totals,
        liquid_start=liquid_start,
        balance_end=bal_end,
        balance_avg=bal_avg,
        lower_day=lower_day,
        consumption_liquid_share=cons_liquid,
        interactions=inter,
        spells=spells.arrays(),
        mobile_since_ms=mobile_since,
        hazard=hazard_hist,
        upgrade_hazard=upgrade_hist,
        state=state_hist,
        engagement=eng_hist,
        onset_month=onset_month,
        abrupt=abrupt,
        frailty=frailty,
        dissatisfaction=dis_hist,
        phase_left=phase_left_hist,
        target_wealth=target_hist,
        salary_redirected=redirected,
    )
