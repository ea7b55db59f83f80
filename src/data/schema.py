"""The canonical schema: the five tables every data source is turned into (DESIGN.md, "Data").

This module only *describes* the tables (columns, types, allowed values, keys). Checking a dataset against
the description lives in :mod:`bankseg.data.validate`; reading and writing in :mod:`bankseg.data.io`.

Conventions
-----------
- ``customer_id`` is an int64 key in every table (adapters map a bank's own ids onto it).
- Dates and timestamps are ``datetime64`` in memory (any resolution), Parquet timestamps on disk.
  ``balances.month`` is the first day of the month.
- Money is a float64 in the dataset's one currency (the synthetic bank uses CNY); amounts are > 0 and the
  direction column says which way money moved. Balances are >= 0; loans carry positive balances.
- Categorical columns hold one of the values listed here; in memory they may be ``str`` or ``category``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Products from low to high value (DESIGN.md). The order is meaningful: "higher-value product" in the
# upgrade label means a later position in this tuple.
PRODUCTS: tuple[str, ...] = (
    "demand_deposit",
    "time_deposit",
    "debit_card",
    "credit_card",
    "payroll",
    "mobile_banking",
    "consumer_loan",
    "mortgage",
    "business_loan",
    "wealth_management",
    "fund",
    "insurance",
    "precious_metal",
    "private_banking",
)
# Defaults only: which products count as AUM and which as loans is dataset configuration
# (conf/data/*.yaml: data.aum_products, data.loan_products).
DEFAULT_AUM_PRODUCTS: tuple[str, ...] = (
    "demand_deposit",
    "time_deposit",
    "wealth_management",
    "fund",
    "insurance",
    "precious_metal",
    "private_banking",
)
DEFAULT_LOAN_PRODUCTS: tuple[str, ...] = ("consumer_loan", "mortgage", "business_loan", "credit_card")

GENDERS: tuple[str, ...] = ("F", "M")
CITY_TIERS: tuple[int, ...] = (1, 2, 3, 4, 5)  # 5 = rural (县域/农村)
OCCUPATIONS: tuple[str, ...] = (
    "salaried",
    "civil_servant",
    "business_owner",
    "farmer",
    "retired",
    "student",
    "professional",
    "freelancer",
    "unemployed",
    "unknown",
)
EDUCATIONS: tuple[str, ...] = ("primary", "secondary", "vocational", "bachelor", "postgraduate", "unknown")
DIRECTIONS: tuple[str, ...] = ("in", "out")
CHANNELS: tuple[str, ...] = ("counter", "atm", "online", "mobile", "pos", "qr")
TXN_CATEGORIES: tuple[str, ...] = (
    "salary",
    "transfer",
    "consumption",
    "bill",
    "loan_repayment",
    "investment",
    "cash",
    "interest",
    "fee",
)
COUNTERPARTIES: tuple[str, ...] = ("own_bank", "other_bank", "merchant", "government", "employer", "self")
INTERACTION_KINDS: tuple[str, ...] = (
    "app_login",
    "complaint",
    "campaign_contact",
    "campaign_response",
    "branch_visit",
)


@dataclass(frozen=True)
class Column:
    """One column of a canonical table."""

    name: str
    kind: str  # "int", "float", "datetime", "category", "str"
    nullable: bool = False
    values: tuple | None = None  # allowed values for kind == "category" (or bounded ints)
    min_value: float | None = None  # inclusive lower bound for numbers
    exclusive_min: bool = False  # True: the bound itself is not allowed (amount > 0)
    description: str = ""


@dataclass(frozen=True)
class Table:
    """A canonical table: its columns, its key, and which of its rows may be set aside as rejects."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    description: str = ""
    # Row-level problems in these tables can be set aside in a rejects file instead of refusing the table.
    rejectable: bool = True
    date_columns: tuple[str, ...] = field(default=())

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no column {name!r}")


CUSTOMERS = Table(
    name="customers",
    description="one row per customer",
    key=("customer_id",),
    rejectable=False,
    columns=(
        Column("customer_id", "int", description="the bank's customer key (int64)"),
        Column("birth_date", "datetime"),
        Column("gender", "category", values=GENDERS),
        Column("city_tier", "int", values=CITY_TIERS, description="1-4 city tiers, 5 = rural"),
        Column("occupation", "category", values=OCCUPATIONS),
        Column("education", "category", values=EDUCATIONS),
        Column("declared_income_monthly", "float", nullable=True, min_value=0.0),
        Column("open_date", "datetime", description="first account opened at this bank"),
        Column("risk_questionnaire_score", "float", nullable=True, min_value=0.0,
               description="0-100, missing when the customer never answered it"),
        Column("credit_score", "float", nullable=True, min_value=0.0),
        Column("mobile_banking_since", "datetime", nullable=True),
    ),
)

BALANCES = Table(
    name="balances",
    description="one row per customer x month x product",
    key=("customer_id", "month", "product"),
    columns=(
        Column("customer_id", "int"),
        Column("month", "datetime", description="first day of the month"),
        Column("product", "category", values=PRODUCTS),
        Column("avg_daily_balance", "float", min_value=0.0),
        Column("month_end_balance", "float", min_value=0.0),
    ),
)

TRANSACTIONS = Table(
    name="transactions",
    description="one row per transaction",
    key=("txn_id",),
    columns=(
        Column("txn_id", "int"),
        Column("customer_id", "int"),
        Column("ts", "datetime"),
        Column("amount", "float", min_value=0.0, exclusive_min=True),
        Column("direction", "category", values=DIRECTIONS),
        Column("channel", "category", values=CHANNELS),
        Column("category", "category", values=TXN_CATEGORIES),
        Column("counterparty", "category", values=COUNTERPARTIES),
    ),
)

HOLDINGS = Table(
    name="holdings",
    description="one row per product held over a period",
    key=("customer_id", "product", "opened"),
    columns=(
        Column("customer_id", "int"),
        Column("product", "category", values=PRODUCTS),
        Column("opened", "datetime"),
        Column("closed", "datetime", nullable=True, description="missing while the product is still held"),
    ),
)

INTERACTIONS = Table(
    name="interactions",
    description="one row per event",
    key=(),
    columns=(
        Column("customer_id", "int"),
        Column("ts", "datetime"),
        Column("kind", "category", values=INTERACTION_KINDS),
    ),
)

TABLES: dict[str, Table] = {t.name: t for t in (CUSTOMERS, BALANCES, TRANSACTIONS, HOLDINGS, INTERACTIONS)}
TABLE_NAMES: tuple[str, ...] = tuple(TABLES)
