"""The PKDD'99 Czech bank (Berka) turned into the five canonical tables (:mod:`bankseg.data.schema`).

Source: ``;``-separated, quoted ``.asc`` files (account, client, disp, order, loan, card, district and the
transaction table); ``financial_data_description.pdf`` is the official guide to the Czech codes. Money is in
CZK. The shared copy holds only the **first 3 MiB** of the transaction table (``trans_first_3MiB.asc``: 49,102
complete rows, 1993-01-01 .. 1994-03-31, sorted by date); its last line is cut mid-row. The reader drops it
and counts it in the conversion report; 1994-03-31 itself is therefore only partly covered.

How each canonical table is made (every choice below is a reading of the source, not a fact in it):

- **The data's range** runs from the first month of the transactions to the month of the last complete
  transaction row (1993-01 .. 1994-03). Nothing dated after it is used: accounts opened later, loans granted
  later and cards issued later are left out (counted in the report), or they would leak the future.
- **customers**: one per client who *owns* an account (``disp.type == OWNER``) opened within the range;
  ``customer_id = client_id`` (the public release already replaced real ids). Disponents (co-users of an
  account) are not customers. ``birth_number`` is YYMMDD with 50 added to the month for women: it gives
  ``birth_date`` and ``gender`` and is then dropped (in the real bank it is the national id). ``city_tier``
  comes from the client's district (:class:`CityTierRule`): 1 = at least 1M inhabitants (Prague), 2 = at least
  300k inhabitants (Brno, Ostrava), 3 = urban ratio >= 70%, 4 = urban ratio >= 55%, 5 (rural) otherwise.
  ``open_date`` is the earliest opening date of the client's owned accounts. Occupation and education are
  "unknown"; declared income, questionnaire and credit score are missing. (``loan.status`` would make a credit
  signal but it is the state at the end of 1998: the future of this range.)
- **transactions** (:data:`TYPE_DIRECTION`, :data:`OPERATION_MAP`, :data:`K_SYMBOL_CATEGORY`): type PRIJEM
  (credit) -> in; VYDAJ (withdrawal) and VYBER (withdrawal in cash) -> out. The channel is ``atm`` for
  VYBER KARTOU (withdrawal by card) and ``counter`` for everything else: Czech retail banking in 1993-94 had no
  internet or mobile channel, transfers were ordered at the branch. The category comes from ``k_symbol`` when
  it is set (SIPO household payment and POJISTNE insurance premium -> bill, UVER loan and LEASING -> loan_repayment,
  UROK interest -> interest, SANKC. UROK penalty interest and SLUZBY statement fee -> fee, DUCHOD old-age
  pension -> salary: a regular monthly income that the salary-regularity features should see), else from the
  operation (VKLAD cash credit, VYBER cash withdrawal, VYBER KARTOU -> cash; PREVOD Z UCTU / NA UCET transfer
  from / to another bank -> transfer). The counterparty is ``government`` for pensions (paid by the state
  through another bank), else ``other_bank`` when the ``bank`` column is set, else ``own_bank`` for interest,
  fees and loans, ``merchant`` for bills paid in cash and ``self`` for cash. ``txn_id = trans_id``. A row with a code outside these maps is set aside (counted).
- **balances**, demand_deposit: the running ``balance`` column gives each account's end-of-day balance (the
  last transaction of a day is the one whose balance is not the pre-balance of another transaction that day;
  when that does not single one out, 0.4% of account-days, the last in file order). It is carried forward over
  days without transactions, is 0 before the account's first transaction and, when negative (an overdraft,
  a liability rather than an asset), counts as 0; the report counts those account-days. ``avg_daily_balance``
  is the mean over all calendar days of the month, ``month_end_balance`` the last day's value. Rows start at
  the month the account was opened.
- **balances**, loans (``loan.asc``): ``consumer_loan``, or ``mortgage`` from ``mortgage_min_amount`` CZK (the
  source gives no purpose; a loan of ~3 years of the average district salary is read as a housing loan).
  Linear amortisation: the balance drops by amount / duration at each month end after the loan's month;
  ``avg_daily_balance`` is the balance held during the month (pro rata in the month of the loan),
  ``month_end_balance`` the balance after that month's instalment.
- **holdings**: every owned account as demand_deposit (opened = the account's date); loans (closed at the end
  of their term when that falls inside the range); cards from ``card.asc`` held by the account's owner:
  classic and junior -> debit_card, gold -> credit_card (the gold card is the bank's premium card; the source
  has no card balances, so it adds no loan balance).
- **Permanent orders** (``order.asc``) are not used: they carry no date, describe the bank at the end of 1998
  (the future of this range), and the payments they make already appear as transactions (SIPO, UVER, POJISTNE).
- **interactions**: none in the source; an empty table with the canonical columns.
"""

from __future__ import annotations

import io as _io
import json
import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bankseg.data import io
from bankseg.data.schema import (
    CHANNELS,
    COUNTERPARTIES,
    DIRECTIONS,
    EDUCATIONS,
    GENDERS,
    INTERACTION_KINDS,
    OCCUPATIONS,
    PRODUCTS,
    TXN_CATEGORIES,
)

log = logging.getLogger(__name__)

CURRENCY = "CZK"
TRANSACTION_FILE = "trans_first_3MiB.asc"
REPORT_FILE = "berka_conversion.json"
SOURCE_FILES = ("account.asc", "client.asc", "disp.asc", "loan.asc", "card.asc", "district.asc")

TYPE_DIRECTION: dict[str, str] = {"PRIJEM": "in", "VYDAJ": "out", "VYBER": "out"}
# operation -> (channel, category, counterparty); "" is a booking by the bank itself (interest, fees).
OPERATION_MAP: dict[str, tuple[str, str, str]] = {
    "VYBER KARTOU": ("atm", "cash", "self"),
    "VKLAD": ("counter", "cash", "self"),
    "VYBER": ("counter", "cash", "self"),
    "PREVOD Z UCTU": ("counter", "transfer", "other_bank"),
    "PREVOD NA UCET": ("counter", "transfer", "other_bank"),
    "": ("counter", "transfer", "own_bank"),
}
K_SYMBOL_CATEGORY: dict[str, str] = {
    "SIPO": "bill",
    "POJISTNE": "bill",
    "UVER": "loan_repayment",
    "LEASING": "loan_repayment",
    "UROK": "interest",
    "SANKC. UROK": "fee",
    "SLUZBY": "fee",
    "DUCHOD": "salary",
}
# Counterparty when no other bank is named, by category (else the operation's counterparty).
CATEGORY_COUNTERPARTY: dict[str, str] = {
    "interest": "own_bank", "fee": "own_bank", "salary": "government", "bill": "merchant",
    "loan_repayment": "own_bank",
}
CARD_PRODUCT: dict[str, str] = {"classic": "debit_card", "junior": "debit_card", "gold": "credit_card"}


@dataclass(frozen=True)
class CityTierRule:
    """City tier of a district from its inhabitants (A4) and urban ratio (A10, %); 5 = rural otherwise."""

    tier1_min_inhabitants: int = 1_000_000
    tier2_min_inhabitants: int = 300_000
    tier3_min_urban_ratio: float = 70.0
    tier4_min_urban_ratio: float = 55.0

    def assign(self, inhabitants: np.ndarray, urban_ratio: np.ndarray) -> np.ndarray:
        """City tiers (int64, 1-5) for arrays of inhabitants and urban ratios."""
        return np.select(
            [inhabitants >= self.tier1_min_inhabitants, inhabitants >= self.tier2_min_inhabitants,
             urban_ratio >= self.tier3_min_urban_ratio, urban_ratio >= self.tier4_min_urban_ratio],
            [1, 2, 3, 4], default=5,
        ).astype(np.int64)


@dataclass
class BerkaConversion:
    """The canonical tables made from a Berka folder, and what was left out and why.

    ``set_aside`` has one row per (source, reason): the source file, what happened, and how many rows. For
    each source file, rows read = rows used + the rows listed here (``source_counts`` gives read and used).
    """

    tables: dict[str, pd.DataFrame]
    set_aside: pd.DataFrame
    source_counts: dict[str, dict[str, int]]
    data_range: tuple[pd.Timestamp, pd.Timestamp]  # [first month start, day after the last covered month)
    n_cut_lines: int
    notes: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        """A JSON-ready summary (counts only, no data values)."""
        return {
            "currency": CURRENCY,
            "data_range": [str(self.data_range[0].date()), str(self.data_range[1].date())],
            "n_cut_lines": self.n_cut_lines,
            "tables": {name: len(frame) for name, frame in self.tables.items()},
            "source_counts": self.source_counts,
            "set_aside": self.set_aside.to_dict(orient="records"),
            "notes": self.notes,
        }


# ------------------------------------------------------------------------------------------------ reading
def read_asc(path: Path | str) -> pd.DataFrame:
    """One ``;``-separated, quoted Berka file; codes stay text ("" where empty), numbers are numbers."""
    return pd.read_csv(path, sep=";", keep_default_na=False, na_values=[], low_memory=False)


def read_cut_asc(path: Path | str) -> tuple[pd.DataFrame, int]:
    """A Berka file cut at a byte count: the rows before its last line break, and how many lines were dropped.

    A file that does not end with a line break was cut mid-line: its last line is dropped whatever it looks
    like (a byte cut cannot prove the line complete). A complete file drops nothing.
    """
    raw = Path(path).read_bytes()
    end = raw.rfind(b"\n")
    n_cut = 0
    if raw and not raw.endswith(b"\n"):
        if end < 0:
            raise ValueError(f"{path}: no complete line (not even a header)")
        raw, n_cut = raw[: end + 1], 1
    frame = pd.read_csv(_io.BytesIO(raw), sep=";", keep_default_na=False, na_values=[], low_memory=False,
                        dtype={"type": "str", "operation": "str", "k_symbol": "str", "bank": "str",
                               "account": "str"})
    return frame, n_cut


def _yymmdd(values, what: str) -> np.ndarray:
    """Dates from Berka's YYMMDD integers (19YY), as datetime64; bad dates are refused with their rows."""
    text = pd.Series(values).astype("str").str.slice(0, 6)
    dates = pd.to_datetime("19" + text, format="%Y%m%d", errors="coerce")
    bad = dates.isna().to_numpy()
    if bad.any():
        raise ValueError(f"{what}: {int(bad.sum())} unreadable YYMMDD dates, e.g. rows {np.flatnonzero(bad)[:5].tolist()}")
    return dates.to_numpy(dtype="datetime64[us]")


def parse_birth_number(values) -> tuple[np.ndarray, np.ndarray]:
    """Birth dates and genders ("F"/"M") from Berka birth numbers YYMMDD (women: month + 50)."""
    number = pd.Series(values).astype("int64").to_numpy()
    month = (number // 100) % 100
    female = month > 50
    fixed = number - np.where(female, 5000, 0)
    return _yymmdd(fixed, "client.birth_number"), np.where(female, "F", "M")


# ------------------------------------------------------------------------------------------------ convert
def convert_berka(folder: Path | str, *, city_tier_rule: CityTierRule | None = None,
                  mortgage_min_amount: float = 300_000.0) -> BerkaConversion:
    """Read a Berka folder and return the canonical tables with the conversion report (see the module doc)."""
    folder = Path(folder)
    missing = [f for f in (*SOURCE_FILES, TRANSACTION_FILE) if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"Berka folder {folder} lacks {missing}")
    rule = city_tier_rule or CityTierRule()
    src = {name.removesuffix(".asc"): read_asc(folder / name) for name in SOURCE_FILES}
    trans, n_cut = read_cut_asc(folder / TRANSACTION_FILE)
    if trans.empty:
        raise ValueError(f"{TRANSACTION_FILE}: no complete transaction rows")
    ledger = _Ledger()
    ledger.read("trans", len(trans) + n_cut)
    if n_cut:
        ledger.aside("trans", "last line cut mid-row (the file is the first 3 MiB of the table)", n_cut)
        log.warning("%s: dropped %d cut last line", TRANSACTION_FILE, n_cut)

    trans_date = _yymmdd(trans["date"], "trans.date")
    last_day = trans_date.max()
    start = trans_date.min().astype("datetime64[M]").astype("datetime64[us]")
    end = (last_day.astype("datetime64[M]") + 1).astype("datetime64[us]")  # month of the last row, complete
    if (last_day + np.timedelta64(1, "D")).astype("datetime64[M]") == last_day.astype("datetime64[M]"):
        end = last_day.astype("datetime64[M]").astype("datetime64[us]")  # last month partial: not covered
    if end <= start:
        raise ValueError(f"{TRANSACTION_FILE}: transactions cover no complete month")

    owners = _owners(src["disp"], ledger)
    accounts = src["account"].assign(opened=_yymmdd(src["account"]["date"], "account.date"))
    ledger.read("account", len(accounts))
    in_range = accounts["opened"].to_numpy() < end
    ledger.aside("account", "opened after the data's range", int((~in_range).sum()))
    accounts = accounts.loc[in_range].merge(owners, on="account_id", how="left", validate="one_to_one")
    if accounts["client_id"].isna().any():
        raise ValueError(f"account.asc: {int(accounts['client_id'].isna().sum())} accounts have no OWNER in disp.asc")
    accounts["client_id"] = accounts["client_id"].astype(np.int64)

    customers = _customers(src["client"], src["district"], accounts, rule, ledger)
    transactions, trans_rows = _transactions(trans, trans_date, accounts, end, ledger)
    deposit_balances, n_negative_days = _deposit_balances(trans_rows, accounts, start, end)
    loans = _loans(src["loan"], accounts, end, mortgage_min_amount, ledger)
    loan_balances = _loan_balances(loans, end)
    holdings = _holdings(accounts, loans, src["card"], src["disp"], end, ledger)
    balances = pd.concat([deposit_balances, loan_balances], ignore_index=True)
    balances = (balances.groupby(["customer_id", "month", "product"], as_index=False, observed=True)
                [["avg_daily_balance", "month_end_balance"]].sum())
    balances["product"] = pd.Categorical(balances["product"].astype("str"), categories=PRODUCTS)
    balances = balances.sort_values(["customer_id", "month", "product"], ignore_index=True)

    tables = {
        "customers": customers,
        "balances": balances,
        "transactions": transactions,
        "holdings": holdings,
        "interactions": _empty_interactions(),
    }
    return BerkaConversion(
        tables=tables,
        set_aside=ledger.frame(),
        source_counts=ledger.counts,
        data_range=(pd.Timestamp(start), pd.Timestamp(end)),
        n_cut_lines=n_cut,
        notes={"negative_end_of_day_balances_counted_as_0": n_negative_days,
               "disponents_not_customers": ledger.notes.get("disponents", 0)},
    )


def load_berka(folder: Path | str, *, city_tier_rule: CityTierRule | None = None,
               mortgage_min_amount: float = 300_000.0) -> dict[str, pd.DataFrame]:
    """The five canonical tables of a Berka folder (money in CZK); see :func:`convert_berka` for the report.

    What was set aside (the cut last line, rows dated after the range, unknown codes) is logged with counts.
    """
    conversion = convert_berka(folder, city_tier_rule=city_tier_rule, mortgage_min_amount=mortgage_min_amount)
    for row in conversion.set_aside.itertuples(index=False):
        log.info("berka: %s: %s: %d rows set aside", row.source, row.reason, row.n_rows)
    return conversion.tables


def write_berka_dataset(folder: Path | str, out_dir: Path | str, *, city_tier_rule: CityTierRule | None = None,
                        mortgage_min_amount: float = 300_000.0) -> BerkaConversion:
    """Convert a Berka folder and write the canonical dataset folder ``out_dir`` (plus ``berka_conversion.json``).

    The tables are written atomically by :func:`bankseg.data.io.write_dataset`; the report beside them holds
    counts only. Returns the conversion (tables and report).
    """
    conversion = convert_berka(folder, city_tier_rule=city_tier_rule, mortgage_min_amount=mortgage_min_amount)
    out_dir = Path(out_dir)
    io.write_dataset(conversion.tables, out_dir)
    target = out_dir / REPORT_FILE
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(json.dumps(conversion.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return conversion


def berka_settings(cfg: Mapping) -> dict:
    """Keyword arguments of :func:`convert_berka` from the plain ``adapter`` mapping of conf/data/berka.yaml."""
    tier = dict(cfg.get("city_tier") or {})
    unknown = sorted(set(tier) - set(CityTierRule.__dataclass_fields__))
    if unknown:
        raise ValueError(f"berka adapter: unknown city_tier settings {unknown}")
    return {"city_tier_rule": CityTierRule(**tier),
            "mortgage_min_amount": float(cfg.get("mortgage_min_amount", 300_000.0))}


# ------------------------------------------------------------------------------------------------ pieces
class _Ledger:
    """Rows read per source file, and rows set aside with a reason."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}
        self.rows: list[dict] = []
        self.notes: dict[str, int] = {}

    def read(self, source: str, n: int) -> None:
        self.counts[source] = {"read": int(n), "used": int(n)}

    def aside(self, source: str, reason: str, n: int) -> None:
        if n:
            self.rows.append({"source": source, "reason": reason, "n_rows": int(n)})
            self.counts[source]["used"] -= int(n)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["source", "reason", "n_rows"])


def _owners(disp: pd.DataFrame, ledger: _Ledger) -> pd.DataFrame:
    """account_id -> client_id of its owner (exactly one per account, refused otherwise)."""
    ledger.read("disp", len(disp))
    is_owner = disp["type"].astype("str").str.strip().eq("OWNER").to_numpy()
    ledger.notes["disponents"] = int((~is_owner).sum())
    ledger.aside("disp", "disponent (co-user of an account), not a customer", int((~is_owner).sum()))
    owners = disp.loc[is_owner, ["account_id", "client_id"]]
    twice = owners["account_id"].duplicated(keep=False).to_numpy()
    if twice.any():
        raise ValueError(f"disp.asc: {int(twice.sum())} rows give an account more than one OWNER")
    return owners


def _customers(client: pd.DataFrame, district: pd.DataFrame, accounts: pd.DataFrame, rule: CityTierRule,
               ledger: _Ledger) -> pd.DataFrame:
    ledger.read("client", len(client))
    first_open = accounts.groupby("client_id")["opened"].min()
    is_customer = client["client_id"].isin(first_open.index).to_numpy()
    ledger.aside("client", "not the owner of an account opened within the range", int((~is_customer).sum()))
    rows = client.loc[is_customer]
    birth, gender = parse_birth_number(rows["birth_number"])
    tiers = pd.Series(
        rule.assign(district["A4"].to_numpy(dtype=np.float64), district["A10"].to_numpy(dtype=np.float64)),
        index=district["A1"].to_numpy(),
    )
    city_tier = tiers.reindex(rows["district_id"].to_numpy())
    if city_tier.isna().any():
        raise ValueError(f"client.asc: {int(city_tier.isna().sum())} clients live in a district not in district.asc")
    n = len(rows)
    out = pd.DataFrame({
        "customer_id": rows["client_id"].to_numpy(dtype=np.int64),
        "birth_date": birth,
        "gender": pd.Categorical(gender, categories=GENDERS),
        "city_tier": city_tier.to_numpy(dtype=np.int64),
        "occupation": pd.Categorical(["unknown"] * n, categories=OCCUPATIONS),
        "education": pd.Categorical(["unknown"] * n, categories=EDUCATIONS),
        "declared_income_monthly": np.full(n, np.nan),
        "open_date": first_open.reindex(rows["client_id"].to_numpy()).to_numpy(dtype="datetime64[us]"),
        "risk_questionnaire_score": np.full(n, np.nan),
        "credit_score": np.full(n, np.nan),
        "mobile_banking_since": np.full(n, np.datetime64("NaT"), dtype="datetime64[us]"),
    })
    return out.sort_values("customer_id", ignore_index=True)


def _transactions(trans: pd.DataFrame, trans_date: np.ndarray, accounts: pd.DataFrame, end: np.datetime64,
                  ledger: _Ledger) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical transactions, and the rows the deposit balances are built from (account, date, balance)."""
    kind = trans["type"].astype("str").str.strip()
    operation = trans["operation"].astype("str").str.strip()
    k_symbol = trans["k_symbol"].astype("str").str.strip()
    bank = trans["bank"].astype("str").str.strip()

    direction = kind.map(TYPE_DIRECTION)
    op = operation.map(OPERATION_MAP)
    op_channel = op.map(lambda v: v[0], na_action="ignore")
    op_category = op.map(lambda v: v[1], na_action="ignore")
    op_counterparty = op.map(lambda v: v[2], na_action="ignore")
    k_category = k_symbol.map(K_SYMBOL_CATEGORY)
    category = k_category.where(k_symbol.ne(""), op_category)
    counterparty = category.map(CATEGORY_COUNTERPARTY).where(k_symbol.ne(""), op_counterparty)
    counterparty = counterparty.where(bank.eq("") | category.eq("salary"), "other_bank")

    reasons = {
        "unknown type code": direction.isna(),
        "unknown operation code": op.isna(),
        "unknown k_symbol code": k_symbol.ne("") & k_category.isna(),
        "amount not > 0": ~(trans["amount"].to_numpy(dtype=np.float64) > 0),
        "account not in account.asc or opened after the range": ~trans["account_id"].isin(accounts["account_id"]),
        "dated in a month the data covers only in part": trans_date >= end,
    }
    bad = np.zeros(len(trans), dtype=bool)
    for reason, mask in reasons.items():
        mask = np.asarray(mask, dtype=bool) & ~bad  # a row is counted once, under its first reason
        ledger.aside("trans", reason, int(mask.sum()))
        bad |= mask
    keep = ~bad
    owner = pd.Series(accounts["client_id"].to_numpy(), index=accounts["account_id"].to_numpy())
    out = pd.DataFrame({
        "txn_id": trans["trans_id"].to_numpy(dtype=np.int64)[keep],
        "customer_id": owner.reindex(trans["account_id"].to_numpy()[keep]).to_numpy(dtype=np.int64),
        "ts": trans_date[keep],
        "amount": trans["amount"].to_numpy(dtype=np.float64)[keep],
        "direction": pd.Categorical(direction.to_numpy()[keep], categories=DIRECTIONS),
        "channel": pd.Categorical(op_channel.to_numpy()[keep], categories=CHANNELS),
        "category": pd.Categorical(category.to_numpy()[keep], categories=TXN_CATEGORIES),
        "counterparty": pd.Categorical(counterparty.to_numpy()[keep], categories=COUNTERPARTIES),
    })
    # Balances use every row whose account is known: the running balance is right even where a code is not.
    known = trans["account_id"].isin(accounts["account_id"]).to_numpy()
    signed = np.where(kind.eq("PRIJEM"), 1.0, -1.0) * trans["amount"].to_numpy(dtype=np.float64)
    rows = pd.DataFrame({
        "account_id": trans["account_id"].to_numpy()[known],
        "date": trans_date[known].astype("datetime64[D]"),
        "balance": trans["balance"].to_numpy(dtype=np.float64)[known],
        "signed": signed[known],
        "position": np.flatnonzero(known),
    })
    return out, rows


def _end_of_day(rows: pd.DataFrame) -> pd.DataFrame:
    """Each account-day's end-of-day balance: the balance of the day's last transaction.

    Within a day the file's order is not the booking order, so the last transaction is found from the chain
    of balances: the one whose balance is no other same-day transaction's pre-balance (balance - signed amount),
    compared in hundredths of a crown. Where zero or several rows qualify, the last in file order is taken.
    """
    post = np.round(rows["balance"].to_numpy() * 100).astype(np.int64)
    pre = np.round((rows["balance"].to_numpy() - rows["signed"].to_numpy()) * 100).astype(np.int64)
    keyed = pd.DataFrame({"account_id": rows["account_id"].to_numpy(), "date": rows["date"].to_numpy(),
                          "position": rows["position"].to_numpy()})
    posts = keyed.assign(amount=post)
    pres = keyed.rename(columns={"position": "other"}).assign(amount=pre)
    pairs = posts.merge(pres, on=["account_id", "date", "amount"])
    followed = np.unique(pairs.loc[pairs["position"] != pairs["other"], "position"].to_numpy())
    candidate = ~np.isin(keyed["position"].to_numpy(), followed)
    ranked = keyed.assign(balance=rows["balance"].to_numpy(), candidate=candidate)
    n_candidates = ranked.groupby(["account_id", "date"])["candidate"].transform("sum").to_numpy()
    ranked["pick"] = np.where(n_candidates == 1, candidate, True)
    last = (ranked.loc[ranked["pick"]].sort_values(["account_id", "date", "position"])
            .drop_duplicates(["account_id", "date"], keep="last"))
    return last[["account_id", "date", "balance"]].reset_index(drop=True)


def _deposit_balances(rows: pd.DataFrame, accounts: pd.DataFrame, start: np.datetime64,
                      end: np.datetime64) -> tuple[pd.DataFrame, int]:
    """Monthly demand_deposit balances per owner from daily end-of-day balances (accounts x days matrix)."""
    eod = _end_of_day(rows)
    days = np.arange(start.astype("datetime64[D]"), end.astype("datetime64[D]"))
    account_ids = np.sort(accounts["account_id"].to_numpy())
    grid = np.full((len(account_ids), len(days)), np.nan)
    a = np.searchsorted(account_ids, eod["account_id"].to_numpy())
    d = (eod["date"].to_numpy().astype("datetime64[D]") - days[0]).astype(np.int64)
    inside = (d >= 0) & (d < len(days))
    grid[a[inside], d[inside]] = eod["balance"].to_numpy()[inside]
    grid = pd.DataFrame(grid).ffill(axis=1).fillna(0.0).to_numpy()  # carried forward; 0 before the first row
    n_negative = int((grid < 0).sum())
    grid = np.maximum(grid, 0.0)

    month_of_day = days.astype("datetime64[M]")
    months, first_day = np.unique(month_of_day, return_index=True)
    days_in_month = np.diff(np.append(first_day, len(days)))
    avg = np.add.reduceat(grid, first_day, axis=1) / days_in_month
    month_end = grid[:, np.append(first_day[1:], len(days)) - 1]

    opened = accounts.set_index("account_id").loc[account_ids]
    open_month = opened["opened"].to_numpy().astype("datetime64[M]")
    held = months[None, :] >= open_month[:, None]
    acc_idx, month_idx = np.nonzero(held)
    out = pd.DataFrame({
        "customer_id": opened["client_id"].to_numpy(dtype=np.int64)[acc_idx],
        "month": months[month_idx].astype("datetime64[us]"),
        "product": "demand_deposit",
        "avg_daily_balance": avg[acc_idx, month_idx],
        "month_end_balance": month_end[acc_idx, month_idx],
    })
    return out, n_negative


def _loans(loan: pd.DataFrame, accounts: pd.DataFrame, end: np.datetime64, mortgage_min_amount: float,
           ledger: _Ledger) -> pd.DataFrame:
    """Loans granted within the range, with their owner, product and term."""
    ledger.read("loan", len(loan))
    granted = _yymmdd(loan["date"], "loan.date")
    in_range = granted < end
    ledger.aside("loan", "granted after the data's range", int((~in_range).sum()))
    rows = loan.loc[in_range].assign(granted=granted[in_range])
    owner = pd.Series(accounts["client_id"].to_numpy(), index=accounts["account_id"].to_numpy())
    client = owner.reindex(rows["account_id"].to_numpy())
    if client.isna().any():
        raise ValueError(f"loan.asc: {int(client.isna().sum())} loans granted within the range on unknown accounts")
    amount = rows["amount"].to_numpy(dtype=np.float64)
    duration = rows["duration"].to_numpy(dtype=np.int64)
    if (duration <= 0).any() or (amount <= 0).any():
        raise ValueError("loan.asc: loans with a duration or amount that is not > 0")
    return pd.DataFrame({
        "customer_id": client.to_numpy(dtype=np.int64),
        "product": np.where(amount >= mortgage_min_amount, "mortgage", "consumer_loan"),
        "granted": rows["granted"].to_numpy(dtype="datetime64[us]"),
        "amount": amount,
        "duration": duration,
    })


def _loan_balances(loans: pd.DataFrame, end: np.datetime64) -> pd.DataFrame:
    """Monthly loan balances by linear amortisation (see the module doc), up to the end of the range."""
    columns = ["customer_id", "month", "product", "avg_daily_balance", "month_end_balance"]
    if loans.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
            columns, ["int64", "datetime64[us]", "str", "float64", "float64"], strict=True)})
    first = loans["granted"].to_numpy().astype("datetime64[M]")
    last = end.astype("datetime64[M]") - 1
    n_months = np.maximum((last - first).astype(np.int64) + 1, 0)
    n_months = np.minimum(n_months, loans["duration"].to_numpy() + 1)  # repaid: no rows after the term
    loan_idx = np.repeat(np.arange(len(loans)), n_months)
    k = np.arange(n_months.sum()) - np.repeat(np.cumsum(n_months) - n_months, n_months)  # months since granted
    amount = loans["amount"].to_numpy()[loan_idx]
    duration = loans["duration"].to_numpy()[loan_idx]
    instalment = amount / duration
    during = np.maximum(amount - instalment * np.maximum(k - 1, 0), 0.0)
    month = first[loan_idx] + k
    granted = loans["granted"].to_numpy()[loan_idx].astype("datetime64[D]")
    month_start = month.astype("datetime64[D]")
    days_in_month = ((month + 1).astype("datetime64[D]") - month_start).astype(np.int64)
    held_days = np.where(k == 0, (month_start + days_in_month - granted).astype(np.int64), days_in_month)
    return pd.DataFrame({
        "customer_id": loans["customer_id"].to_numpy()[loan_idx],
        "month": month.astype("datetime64[us]"),
        "product": loans["product"].to_numpy()[loan_idx],
        "avg_daily_balance": during * held_days / days_in_month,
        "month_end_balance": np.maximum(amount - instalment * k, 0.0),
    })


def _holdings(accounts: pd.DataFrame, loans: pd.DataFrame, card: pd.DataFrame, disp: pd.DataFrame,
              end: np.datetime64, ledger: _Ledger) -> pd.DataFrame:
    """Deposit accounts, loans and cards held by the customers, opened within the range."""
    deposits = pd.DataFrame({"customer_id": accounts["client_id"].to_numpy(dtype=np.int64),
                             "product": "demand_deposit",
                             "opened": accounts["opened"].to_numpy(dtype="datetime64[us]"),
                             "closed": np.datetime64("NaT", "us")})
    # The last instalment falls at the end of the month `duration` months after the loan's month.
    term_end = ((loans["granted"].to_numpy().astype("datetime64[M]")
                 + loans["duration"].to_numpy().astype("timedelta64[M]") + 1).astype("datetime64[D]")
                - np.timedelta64(1, "D")).astype("datetime64[us]")
    loan_rows = pd.DataFrame({"customer_id": loans["customer_id"].to_numpy(dtype=np.int64),
                              "product": loans["product"].to_numpy(),
                              "opened": loans["granted"].to_numpy(dtype="datetime64[us]"),
                              "closed": np.where(term_end < end, term_end, np.datetime64("NaT", "us"))})

    ledger.read("card", len(card))
    issued = _yymmdd(card["issued"].astype("str").str.slice(0, 6), "card.issued")
    type_ = card["type"].astype("str").str.strip()
    product = type_.map(CARD_PRODUCT)
    account_of = pd.Series(disp["account_id"].to_numpy(), index=disp["disp_id"].to_numpy())
    account = account_of.reindex(card["disp_id"].to_numpy()).to_numpy()
    owner = pd.Series(accounts["client_id"].to_numpy(), index=accounts["account_id"].to_numpy())
    client = owner.reindex(account).to_numpy()
    late = issued >= end
    unknown = ~late & product.isna().to_numpy()
    orphan = ~late & ~unknown & pd.isna(client)
    ledger.aside("card", "issued after the data's range", int(late.sum()))
    ledger.aside("card", "unknown card type", int(unknown.sum()))
    ledger.aside("card", "card's account not held by a customer", int(orphan.sum()))
    ok = ~(late | unknown | orphan)
    cards = pd.DataFrame({"customer_id": client[ok].astype(np.int64), "product": product.to_numpy()[ok],
                          "opened": issued[ok], "closed": np.datetime64("NaT", "us")})

    out = pd.concat([deposits, loan_rows, cards], ignore_index=True)
    n_before = len(out)
    out = out.drop_duplicates(["customer_id", "product", "opened"], ignore_index=True)
    if len(out) != n_before:
        log.info("berka holdings: merged %d same-day duplicates (customer, product, opened)", n_before - len(out))
    out["product"] = pd.Categorical(out["product"], categories=PRODUCTS)
    out["closed"] = out["closed"].astype("datetime64[us]")
    return out.sort_values(["customer_id", "opened", "product"], ignore_index=True)


def _empty_interactions() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": pd.Series(dtype="int64"),
        "ts": pd.Series(dtype="datetime64[us]"),
        "kind": pd.Categorical([], categories=INTERACTION_KINDS),
    })
