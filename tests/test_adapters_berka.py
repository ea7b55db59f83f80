"""The Berka (PKDD'99) adapter: the cut transaction file, the Czech codes, balances, and a dataset that validates."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bankseg.data import io
from bankseg.data.adapters import convert_berka, load_berka, write_berka_dataset
from bankseg.data.adapters.berka import parse_birth_number, read_cut_asc
from bankseg.data.validate import validate_dataset

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BANKSEG_SHARED_DATA", ROOT.parent / "shared" / "data"))
BERKA = SHARED / "berka_pkdd99"

needs_berka = pytest.mark.skipif(not BERKA.is_dir(), reason=f"Berka data not found at {BERKA}")

# A tiny Berka folder whose balances can be worked out by hand. Account 10 (client 1, a woman, Prague) and
# account 11 (client 2, a man, a rural district); client 3 is a disponent; account 20 opens after the range.
TINY = {
    "district.asc": [
        "A1;A2;A3;A4;A5;A6;A7;A8;A9;A10;A11;A12;A13;A14;A15;A16",
        '1;"Hl.m. Praha";"Prague";1204953;0;0;0;1;1;100.0;12541;0.29;0.43;167;85677;99107',
        '2;"Vesnice";"south Bohemia";50000;60;20;5;1;5;40.0;8000;3.0;3.5;120;1500;1600',
    ],
    "client.asc": ['"client_id";"birth_number";"district_id"', '1;"706213";1', '2;"450204";2', '3;"551120";2',
                   '4;"600101";1'],
    "disp.asc": ['"disp_id";"client_id";"account_id";"type"', '1;1;10;"OWNER"', '2;2;11;"OWNER"',
                 '3;3;10;"DISPONENT"', '4;4;20;"OWNER"'],
    "account.asc": ['"account_id";"district_id";"frequency";"date"', '10;1;"POPLATEK MESICNE";930110',
                    '11;2;"POPLATEK MESICNE";930105', '20;1;"POPLATEK MESICNE";930601'],
    "loan.asc": ['"loan_id";"account_id";"date";"amount";"duration";"payments";"status"',
                 '1;10;930116;1200;12;100.00;"C"', '2;11;950101;50000;24;2100.00;"A"'],
    "card.asc": ['"card_id";"disp_id";"type";"issued"', '1;2;"gold";930201 00:00:00',
                 '2;1;"classic";950101 00:00:00'],
    "order.asc": ['"order_id";"account_id";"bank_to";"account_to";"amount";"k_symbol"'],
}
TINY_TRANS = [
    '"trans_id";"account_id";"date";"type";"operation";"amount";"balance";"k_symbol";"bank";"account"',
    '201;11;930105;"PRIJEM";"VKLAD";5000.00;5000.00;"";;',
    '101;10;930110;"PRIJEM";"VKLAD";1000.00;1000.00;"";;',
    '202;11;930115;"PRIJEM";"PREVOD Z UCTU";3000.00;8000.00;"DUCHOD";"CD";"87654321"',
    '102;10;930120;"VYDAJ";"VYBER";400.00;600.00;"";;',
    '203;11;930203;"VYDAJ";"VYBER KARTOU";500.00;7500.00;"";;',
    # Booked second but listed first: the day ends at 800, not at the last row's 1100.
    '104;10;930205;"VYDAJ";"PREVOD NA UCET";300.00;800.00;"SIPO";"AB";"12345678"',
    '103;10;930205;"PRIJEM";"VKLAD";500.00;1100.00;"";;',
    '105;10;930228;"PRIJEM";"";10.00;810.00;"UROK";;',
    '204;11;930228;"VYDAJ";"";14.60;7485.40;"SLUZBY";;',
]
CUT_LINE = '205;11;930228;"PRIJ'


@pytest.fixture
def tiny(tmp_path) -> Path:
    folder = tmp_path / "berka"
    folder.mkdir()
    for name, lines in TINY.items():
        (folder / name).write_text("\r\n".join(lines) + "\r\n")
    (folder / "trans_first_3MiB.asc").write_text("\r\n".join(TINY_TRANS) + "\r\n" + CUT_LINE)
    return folder


def test_cut_last_line_is_dropped_and_counted(tmp_path):
    path = tmp_path / "t.asc"
    path.write_text("\r\n".join(TINY_TRANS) + "\r\n" + CUT_LINE)
    frame, n_cut = read_cut_asc(path)
    assert n_cut == 1 and len(frame) == len(TINY_TRANS) - 1
    path.write_text("\r\n".join(TINY_TRANS) + "\r\n")
    frame, n_cut = read_cut_asc(path)
    assert n_cut == 0 and len(frame) == len(TINY_TRANS) - 1


def test_birth_number_gives_birth_date_and_gender():
    birth, gender = parse_birth_number(["706213", "450204"])
    assert list(pd.DatetimeIndex(birth).strftime("%Y-%m-%d")) == ["1970-12-13", "1945-02-04"]
    assert list(gender) == ["F", "M"]


def test_tiny_customers_are_account_owners_within_the_range(tiny):
    conversion = convert_berka(tiny)
    customers = conversion.tables["customers"].set_index("customer_id")
    assert list(customers.index) == [1, 2]
    assert customers.loc[1, "gender"] == "F" and customers.loc[2, "gender"] == "M"
    assert customers.loc[1, "city_tier"] == 1 and customers.loc[2, "city_tier"] == 5
    assert customers.loc[1, "open_date"] == pd.Timestamp("1993-01-10")
    assert (customers["occupation"] == "unknown").all() and customers["declared_income_monthly"].isna().all()
    aside = conversion.set_aside.set_index(["source", "reason"])["n_rows"]
    assert aside[("account", "opened after the data's range")] == 1
    assert aside[("disp", "disponent (co-user of an account), not a customer")] == 1
    assert conversion.data_range == (pd.Timestamp("1993-01-01"), pd.Timestamp("1993-03-01"))


def test_tiny_transactions_translate_the_czech_codes(tiny):
    conversion = convert_berka(tiny)
    assert conversion.n_cut_lines == 1
    assert conversion.source_counts["trans"] == {"read": len(TINY_TRANS), "used": len(TINY_TRANS) - 1}
    txn = conversion.tables["transactions"].set_index("txn_id")
    as_text = txn[["direction", "channel", "category", "counterparty"]].astype("str")
    assert as_text.loc[104].tolist() == ["out", "counter", "bill", "other_bank"]  # SIPO to another bank
    assert as_text.loc[202].tolist() == ["in", "counter", "salary", "government"]  # DUCHOD: pension
    assert as_text.loc[203].tolist() == ["out", "atm", "cash", "self"]  # VYBER KARTOU
    assert as_text.loc[204].tolist() == ["out", "counter", "fee", "own_bank"]  # SLUZBY
    assert as_text.loc[105].tolist() == ["in", "counter", "interest", "own_bank"]  # UROK
    assert as_text.loc[101].tolist() == ["in", "counter", "cash", "self"]  # VKLAD
    assert txn.loc[202, "customer_id"] == 2 and txn.loc[104, "amount"] == 300.0


def test_tiny_balances_average_the_end_of_day_balance(tiny):
    balances = convert_berka(tiny).tables["balances"]
    got = balances.set_index(["customer_id", "month", "product"])
    jan, feb = pd.Timestamp("1993-01-01"), pd.Timestamp("1993-02-01")

    def row(customer, month, product):
        r = got.loc[(customer, month, product)]
        return r["avg_daily_balance"], r["month_end_balance"]

    # Account 10: 0 for 9 days, 1000 for 10 days, 600 for 12 days; then 600 x 4, 800 x 23, 810 x 1.
    assert row(1, jan, "demand_deposit") == pytest.approx(((9 * 0 + 10 * 1000 + 12 * 600) / 31, 600))
    assert row(1, feb, "demand_deposit") == pytest.approx(((4 * 600 + 23 * 800 + 810) / 28, 810))
    # Account 11: 0 x 4, 5000 x 10, 8000 x 17; then 8000 x 2, 7500 x 25, 7485.40 x 1.
    assert row(2, jan, "demand_deposit") == pytest.approx(((10 * 5000 + 17 * 8000) / 31, 8000))
    assert row(2, feb, "demand_deposit") == pytest.approx(((2 * 8000 + 25 * 7500 + 7485.40) / 28, 7485.40))
    # Loan of 1200 over 12 months granted 16 January: held 16 of 31 days; first instalment at the end of February.
    assert row(1, jan, "consumer_loan") == pytest.approx((1200 * 16 / 31, 1200))
    assert row(1, feb, "consumer_loan") == pytest.approx((1200, 1100))
    assert len(balances) == 6


def test_tiny_holdings_include_loans_and_cards_within_the_range(tiny):
    conversion = convert_berka(tiny)
    holdings = conversion.tables["holdings"]
    held = {(r.customer_id, str(r.product), r.opened.strftime("%Y-%m-%d")) for r in holdings.itertuples()}
    assert held == {(1, "demand_deposit", "1993-01-10"), (1, "consumer_loan", "1993-01-16"),
                    (2, "demand_deposit", "1993-01-05"), (2, "credit_card", "1993-02-01")}
    aside = conversion.set_aside.set_index(["source", "reason"])["n_rows"]
    assert aside[("loan", "granted after the data's range")] == 1
    assert aside[("card", "issued after the data's range")] == 1


def test_tiny_dataset_validates_and_round_trips(tiny, tmp_path):
    out = tmp_path / "canonical"
    conversion = write_berka_dataset(tiny, out)
    report = json.loads((out / "berka_conversion.json").read_text())
    assert report["n_cut_lines"] == 1 and report["currency"] == "CZK"
    tables = io.read_dataset(out)
    result = validate_dataset(tables)
    assert len(result.rejects) == 0
    assert {name: c.n_kept for name, c in result.counts.items()} == {
        name: len(frame) for name, frame in conversion.tables.items()}


@needs_berka
def test_real_berka_converts_to_a_dataset_that_passes_validation(tmp_path):
    out = tmp_path / "berka"
    conversion = write_berka_dataset(BERKA, out)
    # ../shared/data/README.md: 49,102 complete rows, 1993-01-01 .. 1994-03-31, 1,229 accounts; the last line is cut.
    assert conversion.n_cut_lines == 1
    assert conversion.source_counts["trans"] == {"read": 49_103, "used": 49_102}
    tables = io.read_dataset(out)
    assert len(tables["transactions"]) == 49_102
    assert tables["transactions"]["ts"].min() == pd.Timestamp("1993-01-01")
    assert tables["transactions"]["ts"].max() == pd.Timestamp("1994-03-31")
    assert len(tables["customers"]) == 1_229
    result = validate_dataset(tables)
    for name, counts in result.counts.items():
        assert counts.n_in == len(tables[name]) == counts.n_kept + counts.n_rejected
    assert len(result.rejects) == 0
    assert result.date_range == (pd.Timestamp("1993-01-01"), pd.Timestamp("1994-04-01"))
    # Every source row is used or set aside with a reason.
    for source, counts in conversion.source_counts.items():
        aside = conversion.set_aside.loc[conversion.set_aside["source"] == source, "n_rows"].sum()
        assert counts["read"] == counts["used"] + aside


@needs_berka
def test_real_berka_runs_through_features_and_tiers():
    from bankseg.features.build import build_feature_table
    from bankseg.segments import assign_composite_tier, load_default_segment_rules

    tables = load_berka(BERKA)
    features = build_feature_table(tables, "1994-04-01", aum_products=["demand_deposit"],
                                   loan_products=["consumer_loan", "mortgage"])
    assert len(features) == len(tables["customers"])
    # The 3-month ADB feature agrees with the monthly balances it was built from (Jan-Mar 1994), for the
    # customers who held their account all three months.
    months = tables["balances"]["month"].between("1994-01-01", "1994-03-01")
    deposit = tables["balances"].loc[months & (tables["balances"]["product"] == "demand_deposit")]
    per_customer = deposit.groupby("customer_id")["avg_daily_balance"].agg(["sum", "size"])
    expected = per_customer.loc[per_customer["size"] == 3, "sum"] / 3
    assert len(expected) > 1_000
    got = features.set_index("customer_id")["bal_aum_adb_3m"]
    np.testing.assert_allclose(got.loc[expected.index].to_numpy(), expected.to_numpy(), rtol=0.02)
    tiers = assign_composite_tier(features, load_default_segment_rules().composite_tier)
    assert tiers.notna().all()
    assert (tiers.astype("str") == "mass").mean() > 0.5  # CNY bounds on CZK balances: mostly mass (berka.yaml)


@needs_berka
@pytest.mark.slow
def test_real_berka_personas_fit():
    import yaml

    from bankseg.features.build import build_feature_table
    from bankseg.models.personas import PersonaModel

    tables = load_berka(BERKA)
    features = build_feature_table(tables, "1994-04-01", aum_products=["demand_deposit"],
                                   loan_products=["consumer_loan", "mortgage"])
    settings = yaml.safe_load((ROOT / "conf" / "model" / "personas.yaml").read_text())
    wanted = settings.get("estimator", settings)["features"]
    available = [f for f in wanted if f in features.columns and features[f].nunique() > 1]
    model = PersonaModel(features=available, k_range=(3, 5), n_bootstrap=0, n_init=2, random_state=0)
    ids = model.fit(features).predict(features)
    assert len(ids) == len(features) and 3 <= len(np.unique(ids)) <= 5
