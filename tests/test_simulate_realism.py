"""Realism of the simulated bank: properties a retail banker would recognise (default seed, 5,000 customers x 36 months).

The churn label and composite tiers are computed here from the raw tables, independently of the simulator.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from bankseg.data import schema
from bankseg.data.simulate import SimulatorParams, simulate_bank

N_MONTHS = 36
TIER_BOUNDS = [0, 50_000, 500_000, 2_000_000, 6_000_000, np.inf]
TIERS = ["mass", "gold", "platinum", "diamond", "private"]
MIN_AUM_IN_SCOPE = 1_000.0


@pytest.fixture(scope="module")
def bank() -> dict[str, pd.DataFrame]:
    return simulate_bank(SimulatorParams(n_customers=5_000, n_months=N_MONTHS, customers_per_part=2_500))


@pytest.fixture(scope="module")
def months(bank) -> pd.DatetimeIndex:
    return pd.date_range("2023-01-01", periods=N_MONTHS, freq="MS").astype("datetime64[ms]")


@pytest.fixture(scope="module")
def aum(bank, months) -> pd.DataFrame:
    """Average daily AUM per customer (rows) and month (columns); 0 where nothing is held."""
    b = bank["balances"]
    b = b[b["product"].isin(schema.DEFAULT_AUM_PRODUCTS)]
    wide = b.pivot_table(index="customer_id", columns="month", values="avg_daily_balance", aggfunc="sum",
                         fill_value=0.0, observed=True)
    return wide.reindex(index=bank["customers"].customer_id, columns=months, fill_value=0.0)


def churn_label(bank, aum: pd.DataFrame, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(in scope, churned) for as_of = month t: next-3-month ADB AUM down 70%+, or every holding closed."""
    a = aum.to_numpy()
    before, after = a[:, t - 3:t].mean(axis=1), a[:, t:t + 3].mean(axis=1)
    h = bank["holdings"]
    horizon_end = aum.columns[t + 2] + pd.offsets.MonthEnd(0)
    still_open = h.closed.isna() | (h.closed > horizon_end)
    open_ids = set(h.loc[still_open, "customer_id"])
    all_closed = ~aum.index.isin(list(open_ids))
    in_scope = before >= MIN_AUM_IN_SCOPE
    return in_scope, (after <= 0.3 * before) | all_closed


def test_volumes_look_like_a_retail_bank(bank):
    gtm = bank["ground_truth_monthly"]
    per_customer_month = len(bank["transactions"]) / len(gtm)
    assert 8 <= per_customer_month <= 18
    tx = bank["transactions"]
    persona = bank["ground_truth"].set_index("customer_id").persona
    months_by_persona = gtm.customer_id.map(persona).value_counts()
    rate = tx.customer_id.map(persona).value_counts() / months_by_persona
    own = tx[~tx.category.isin(["interest", "fee"])]  # what the customer did, not what the bank posted
    own_rate = own.customer_id.map(persona).value_counts() / months_by_persona
    assert own_rate["dormant"] < 1.5
    assert rate["elderly_saver"] < rate["young_digital"]
    assert rate["young_digital"] >= 12  # tens of transactions a month for the most active


def test_composite_tiers_by_three_month_adb_are_heavily_skewed(aum):
    last3 = aum.iloc[:, -3:].mean(axis=1)
    share = pd.cut(last3, TIER_BOUNDS, right=False, labels=TIERS).value_counts(normalize=True)
    assert share["mass"] > 0.5
    assert share["private"] < 0.01
    assert share["mass"] > share["gold"] > share["platinum"] > share["diamond"] >= share["private"]


def test_top_fifth_of_customers_hold_most_of_the_aum(aum):
    last3 = np.sort(aum.iloc[:, -3:].mean(axis=1).to_numpy())[::-1]
    assert last3[: len(last3) // 5].sum() >= 0.7 * last3.sum()


def test_month_end_balance_flatters_some_customers(bank):
    """A few customers deposit at month end and withdraw early next month (月末存月初取)."""
    b = bank["balances"]
    dd = b[(b["product"] == "demand_deposit") & (b.avg_daily_balance > 1_000)]
    ratio = (dd.month_end_balance / dd.avg_daily_balance).groupby(dd.customer_id).median()
    share = (ratio > 1.5).mean()
    assert 0.002 < share < 0.1


def test_customers_with_three_products_churn_less_than_single_product_ones(bank, months):
    as_of = months[12]
    h = bank["holdings"]
    held = h[(h.opened < as_of) & (h.closed.isna() | (h.closed >= as_of))]
    n_products = held.groupby("customer_id").size()
    gt = bank["ground_truth"].set_index("customer_id")
    churned = gt.churn_onset_month.ge(as_of) & gt.churn_onset_month.lt(months[24])
    active = bank["ground_truth_monthly"].query("month == @months[11] and state == 'active'").customer_id
    n_products = n_products.reindex(active, fill_value=0)
    rate_single = churned[n_products.index[n_products == 1]].mean()
    rate_three_plus = churned[n_products.index[n_products >= 3]].mean()
    assert (n_products == 1).sum() >= 80
    assert rate_three_plus < 0.6 * rate_single


def test_farmers_inflows_peak_in_harvest_months(bank):
    farmers = bank["ground_truth"].query("persona == 'seasonal_farmer'").customer_id
    tx = bank["transactions"]
    inflow = tx[tx.customer_id.isin(farmers) & (tx.direction == "in")]
    # each farmer's inflows by calendar month as a share of their own total, averaged over farmers
    per_farmer = inflow.groupby([inflow.customer_id, inflow.ts.dt.month]).amount.sum().unstack(fill_value=0.0)
    by_month = per_farmer.div(per_farmer.sum(axis=1), axis=0).mean()
    harvest = by_month[[9, 10, 11]].mean()
    rest = by_month.drop([9, 10, 11]).mean()
    assert harvest > 1.5 * rest
    assert by_month.idxmax() in (9, 10, 11)


def test_mobile_channel_share_falls_with_age(bank):
    c = bank["customers"].set_index("customer_id")
    age = (pd.Timestamp("2023-01-01") - c.birth_date).dt.days / 365.25
    band = pd.cut(age, [17, 30, 45, 60, 120], labels=["18-30", "31-45", "46-60", "60+"])
    tx = bank["transactions"]
    mobile = (tx.channel == "mobile").groupby(tx.customer_id.map(band), observed=True).mean()
    assert mobile.is_monotonic_decreasing
    assert mobile["18-30"] > 3 * mobile["60+"]
    counter = (tx.channel == "counter").groupby(tx.customer_id.map(band), observed=True).mean()
    assert counter["60+"] > 3 * counter["18-30"]


def test_payroll_customers_receive_salary_on_a_stable_day(bank):
    salary = bank["transactions"].query("category == 'salary'")
    days = salary.ts.dt.day
    per_customer = days.groupby(salary.customer_id)
    regular = per_customer.size() >= 6
    modal_share = per_customer.agg(lambda d: d.value_counts(normalize=True).iloc[0])[regular]
    assert regular.sum() >= 500
    assert (modal_share >= 0.8).mean() >= 0.9
    assert (salary.counterparty == "employer").all()


def test_churners_activity_declines_and_money_leaves_before_balances_drain(bank, aum, months):
    gtm = bank["ground_truth_monthly"]
    gt = bank["ground_truth"].set_index("customer_id")
    drain_start = gtm[gtm.state == "draining"].groupby("customer_id").month.min()
    warned = drain_start[~gt.churn_abrupt.reindex(drain_start.index)]
    onset = gt.churn_onset_month.reindex(warned.index)
    # warned churners whose warning lasted 2+ months, with 6 months of history before the onset
    mi = {m: i for i, m in enumerate(months)}
    d_idx = warned.map(mi)
    o_idx = onset.map(mi)
    keep = (d_idx - o_idx >= 2) & (o_idx >= 6) & (d_idx <= N_MONTHS - 3)
    ids = warned.index[keep]
    assert len(ids) >= 30
    tx = bank["transactions"]
    tx = tx[tx.customer_id.isin(ids)]
    rel = tx.ts.dt.to_period("M").dt.to_timestamp().astype("datetime64[ms]").map(mi) - tx.customer_id.map(d_idx)
    # baseline: 8-5 months before the drain (before any onset); warning: the 2 months before the drain
    window = pd.cut(rel, [-8, -4, -2, 0, 2, 4], right=False, labels=["baseline", "gap", "warning", "drain", "after"])
    n_tx = window.value_counts() / pd.Series({"baseline": 4, "gap": 2, "warning": 2, "drain": 2, "after": 2})
    assert n_tx["warning"] < 0.8 * n_tx["baseline"]
    out_other = (tx.direction == "out") & (tx.counterparty == "other_bank")
    out = tx.direction == "out"
    other_share = tx.amount[out_other].groupby(window[out_other], observed=True).sum() / tx.amount[out].groupby(
        window[out], observed=True).sum()
    assert other_share["warning"] > other_share["baseline"]
    a = aum.loc[ids].to_numpy()
    rows = np.arange(len(ids))
    d = d_idx[keep].to_numpy()
    baseline_aum = np.mean([a[rows, d - k] for k in (5, 6, 7)], axis=0)
    after_aum = a[rows, np.minimum(d + 2, N_MONTHS - 1)]
    assert np.median(after_aum / np.maximum(baseline_aum, 1.0)) < 0.3


def test_churn_onset_is_announced_by_behaviour_before_it_starts(bank):
    """Issue 12: what drives onset shows months before it (fewer logins, money to other banks), not perfectly."""
    gtm = bank["ground_truth_monthly"]
    onset = pd.to_datetime(bank["ground_truth"].set_index("customer_id").churn_onset_month)
    tx, inter = bank["transactions"], bank["interactions"]
    labels, latent, logins, other = [], [], [], []
    for t in pd.date_range("2024-01-01", "2025-07-01", freq="6MS"):
        active = gtm[(gtm.month == t - pd.DateOffset(months=1)) & (gtm.state == "active")].set_index("customer_id")
        o = onset.reindex(active.index)
        labels.append(((o >= t) & (o < t + pd.DateOffset(months=3))).to_numpy())
        latent.append(active.dissatisfaction.to_numpy())
        past = (tx.ts >= t - pd.DateOffset(months=3)) & (tx.ts < t) & (tx.direction == "out")
        out = tx[past].groupby("customer_id").amount.sum().reindex(active.index, fill_value=0.0)
        away = tx[past & (tx.counterparty == "other_bank")].groupby("customer_id").amount.sum()
        other.append((away.reindex(active.index, fill_value=0.0) / out.where(out > 0)).fillna(0.0).to_numpy())
        seen = (inter.ts >= t - pd.DateOffset(months=3)) & (inter.ts < t) & (inter.kind == "app_login")
        logins.append(inter[seen].groupby("customer_id").size().reindex(active.index, fill_value=0).to_numpy())
    y, d = np.concatenate(labels), np.concatenate(latent)
    assert y.sum() >= 100
    # the latent driver ranks the coming onsets well but far from perfectly (some churn is abrupt luck)
    assert 0.70 <= roc_auc_score(y, d) <= 0.92
    # and it is visible: more money already going to other banks, fewer logins, before any onset
    share, n_logins = np.concatenate(other), np.concatenate(logins)
    assert share[y].mean() > 1.2 * share[~y].mean()
    assert n_logins[y].mean() < 0.9 * n_logins[~y].mean()


def test_the_book_looks_like_a_real_retail_book(tmp_path_factory):
    """Issue 12's targets, at the default knobs: dormant share, rich share, near-empty accounts, attrition."""
    from bankseg.data.simulate import write_simulated_bank
    from bankseg.data.world_facts import world_facts

    root = tmp_path_factory.mktemp("book") / "bank"
    write_simulated_bank(SimulatorParams(n_customers=5_000, n_months=N_MONTHS, seed=5), root, progress=False)
    facts = world_facts(root, "2025-07-01")
    assert 0.20 <= facts["low_activity_share"] <= 0.30, facts
    assert 0.015 <= facts["share_aum_500k"] <= 0.035, facts
    assert facts["near_empty_share"] >= 0.15, facts
    assert 0.08 <= facts["annual_attrition_active"] <= 0.15, facts


def test_personas_blend_so_that_no_trait_identifies_them(bank):
    gt = bank["ground_truth"]
    assert gt.persona_mix_weight.between(0.5, 1.0).all()
    # active customers blend; dormant accounts do not (issue 12: 20-30% dormant, not blended into active personas)
    dormant = gt.persona == "dormant"
    assert (gt.persona_mix_weight[~dormant] < 0.9).mean() > 0.5
    assert (gt.persona_mix_weight[dormant] == 1.0).all() and not (gt.second_persona[~dormant] == "dormant").any()
    # a farmer-only occupation does not give the persona away: some farmers are not farmers by occupation
    occ = bank["customers"].set_index("customer_id").occupation.reindex(gt.customer_id).to_numpy()
    farmers = (gt.persona == "seasonal_farmer").to_numpy()
    assert 0.7 < (occ[farmers] == "farmer").mean() < 0.99


def test_campaign_responses_follow_contacts_and_lift_adoption(bank):
    it = bank["interactions"]
    contacts = it[it.kind == "campaign_contact"]
    responses = it[it.kind == "campaign_response"]
    assert 0 < len(responses) < 0.3 * len(contacts)
    first_contact = contacts.groupby("customer_id").ts.min()
    assert (responses.ts >= responses.customer_id.map(first_contact)).all()
    h = bank["holdings"]
    month = lambda s: s.dt.to_period("M")  # noqa: E731
    opened = set(zip(h.customer_id, month(h.opened), strict=True))
    resp = set(zip(responses.customer_id, month(responses.ts), strict=True))
    cont_only = set(zip(contacts.customer_id, month(contacts.ts), strict=True)) - resp
    rate_resp = np.mean([k in opened for k in resp])
    rate_cont = np.mean([k in opened for k in cont_only])
    assert rate_resp > 2 * rate_cont
