"""Plan the as_of dates of a training run: several training dates and one later out-of-time date.

A label looks ``horizon`` months past its as_of, and features look back ``history`` months. On data covering the
months [first, last] (balances months), the out-of-time (OOT) as_of is the latest month start whose label window
still fits in the data; training as_of dates step back from there, each one's label window ending on or before
the OOT as_of, so no training label sees a month the OOT evaluation is scored on.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class AsOfPlan:
    """Training as_of dates (oldest first) and the out-of-time as_of."""

    train: tuple[pd.Timestamp, ...]
    oot: pd.Timestamp

    def as_dict(self) -> dict[str, object]:
        return {"train": [d.date().isoformat() for d in self.train], "oot": self.oot.date().isoformat()}


def month_start(value) -> pd.Timestamp:
    """The first day of the month of ``value`` (a date, string or Timestamp)."""
    ts = pd.Timestamp(value)
    return pd.Timestamp(year=ts.year, month=ts.month, day=1)


def plan_as_of_dates(
    first_month,
    last_month,
    *,
    horizon_months: int,
    history_months: int,
    n_train: int = 4,
    step_months: int = 3,
) -> AsOfPlan:
    """As_of dates for training and OOT on data whose balances cover ``first_month`` .. ``last_month``.

    The OOT as_of is ``last_month + 1 - horizon`` (its label window ends with the data). Training dates are
    ``oot - horizon - i * step`` for i = 0..n_train-1, dropping any that would have less than ``history_months``
    of history. Raises ValueError when the data is too short for even one training date.
    """
    first, last = month_start(first_month), month_start(last_month)
    if last < first:
        raise ValueError(f"last month {last.date()} is before first month {first.date()}")
    oot = last + pd.DateOffset(months=1 - horizon_months)
    earliest = first + pd.DateOffset(months=history_months)
    newest_train = oot - pd.DateOffset(months=horizon_months)
    train = [newest_train - pd.DateOffset(months=i * step_months) for i in range(n_train)]
    train = sorted(d for d in train if d >= earliest)
    if not train:
        months = (last.year - first.year) * 12 + last.month - first.month + 1
        raise ValueError(
            f"data covers {months} months ({first.date()} .. {last.date()}): too short for {history_months} months "
            f"of feature history plus two label windows of {horizon_months} months (training, then out-of-time)"
        )
    return AsOfPlan(train=tuple(pd.Timestamp(d) for d in train), oot=pd.Timestamp(oot))


def resolve_as_of_plan(explicit_train, explicit_oot, first_month, last_month, **kwargs) -> AsOfPlan:
    """Use the configured dates when given (checking the OOT rule), else :func:`plan_as_of_dates`."""
    if not explicit_train and not explicit_oot:
        return plan_as_of_dates(first_month, last_month, **kwargs)
    if not (explicit_train and explicit_oot):
        raise ValueError("set both as_of.train and as_of.oot, or neither (then they are planned from the data)")
    train = tuple(sorted(month_start(d) for d in explicit_train))
    oot = month_start(explicit_oot)
    horizon = kwargs["horizon_months"]
    latest_label_end = train[-1] + pd.DateOffset(months=horizon)
    if latest_label_end > oot:
        raise ValueError(
            f"out-of-time as_of {oot.date()} overlaps the label window of training as_of {train[-1].date()} "
            f"(which ends {latest_label_end.date()}): choose an OOT date at least {horizon} months later"
        )
    return AsOfPlan(train=train, oot=oot)


def latest_as_of(last_month) -> pd.Timestamp:
    """The as_of that sees everything: the first day after the data's last month."""
    return month_start(last_month) + pd.DateOffset(months=1)


def expand_as_of(value, first_month, last_month, **plan_kwargs) -> list[pd.Timestamp] | None:
    """Dates for the keywords jobs accept in place of ``as_of``; None when ``value`` is not a keyword.

    ``plan`` gives the planned training dates and the out-of-time date (:func:`plan_as_of_dates` with
    ``plan_kwargs``); ``latest`` gives :func:`latest_as_of`.
    """
    if isinstance(value, str) and value == "plan":
        plan = plan_as_of_dates(first_month, last_month, **plan_kwargs)
        return [*plan.train, plan.oot]
    if isinstance(value, str) and value == "latest":
        return [latest_as_of(last_month)]
    return None
