"""Synthetic customer data: the committed sample and the drift scenarios replayed in demos.

The generator is the source of ``data/sample/customers.csv`` (``make_customers(3000, seed=7)``),
so the sample can be reproduced, and the same code produces shifted batches for monitoring
demos and tests: covariate shift (inputs move), label shift (the outcome mix moves) and concept
drift (the input -> outcome relation changes).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

Shift = Literal["none", "covariate", "label", "concept"]

CONTRACTS = ("month-to-month", "one-year", "two-year")
PAYMENTS = ("electronic-check", "mailed-check", "bank-transfer", "credit-card")
INTERNET = ("dsl", "fiber", "none")
REGIONS = ("north", "south", "east", "west")


def make_customers(n: int, seed: int = 7, shift: Shift = "none") -> pd.DataFrame:
    """Draw ``n`` customers with numeric and categorical columns, missing values and two targets.

    ``churned`` ("yes"/"no") is the classification target, ``lifetime_value`` the regression
    target; each project drops the other one in its data config.
    """
    rng = np.random.default_rng(seed)
    frame = _inputs(rng, n, shift)
    frame["churned"] = _churn(rng, frame, shift)
    frame["lifetime_value"] = _lifetime_value(rng, frame, shift)
    _blank_out(rng, frame, {"total_charges": 0.03, "payment_method": 0.04, "support_calls": 0.02})
    return frame


def _inputs(rng: np.random.Generator, n: int, shift: Shift) -> pd.DataFrame:
    """Customer attributes; covariate shift makes tenures short and fiber the norm."""
    covariate = shift == "covariate"
    tenure = rng.integers(0, 24 if covariate else 73, size=n)
    internet_p = [0.1, 0.8, 0.1] if covariate else [0.35, 0.45, 0.2]
    internet = rng.choice(INTERNET, size=n, p=internet_p)
    base = np.select([internet == "fiber", internet == "dsl"], [80.0, 55.0], 22.0)
    monthly = np.round(
        base + rng.normal(0, 12 if not covariate else 20, size=n) + (15 if covariate else 0), 2
    )
    monthly = np.clip(monthly, 18.0, 140.0)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:06d}" for i in rng.permutation(10 * n)[:n]],
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "total_charges": np.round(monthly * np.maximum(tenure, 1) * rng.uniform(0.9, 1.05, size=n), 2),
            "contract": rng.choice(CONTRACTS, size=n, p=[0.55, 0.25, 0.2]),
            "payment_method": rng.choice(PAYMENTS, size=n, p=[0.35, 0.2, 0.23, 0.22]),
            "internet_service": internet,
            "support_calls": rng.poisson(1.5, size=n).astype(float),
            "region": rng.choice(REGIONS, size=n),
            "senior_citizen": rng.choice([0, 1], size=n, p=[0.84, 0.16]),
        }
    )


def _churn(rng: np.random.Generator, frame: pd.DataFrame, shift: Shift) -> np.ndarray:
    """Churn odds rise with short tenure, monthly contracts, high charges and support calls."""
    logit = (
        -1.2
        - 0.045 * frame["tenure_months"]
        + 1.4 * (frame["contract"] == "month-to-month")
        + 0.025 * (frame["monthly_charges"] - 60)
        + 0.35 * frame["support_calls"]
        + 0.5 * (frame["payment_method"] == "electronic-check")
    ).to_numpy(dtype=float)
    if shift == "label":
        logit = logit + 2.0
    if shift == "concept":
        logit = -logit
    return np.where(rng.uniform(size=len(frame)) < 1 / (1 + np.exp(-logit)), "yes", "no")


def _lifetime_value(rng: np.random.Generator, frame: pd.DataFrame, shift: Shift) -> np.ndarray:
    """Expected revenue: charges times an expected remaining tenure, longer on long contracts."""
    horizon = np.select(
        [frame["contract"] == "two-year", frame["contract"] == "one-year"], [36.0, 24.0], 10.0
    ) + 0.3 * frame["tenure_months"].to_numpy(dtype=float)
    if shift == "label":
        horizon = 1.6 * horizon  # the same customers stay longer: the target moves, inputs do not
    if shift == "concept":
        horizon = 60.0 - horizon
    value = frame["monthly_charges"].to_numpy(dtype=float) * horizon + rng.normal(0, 150, size=len(frame))
    return np.round(np.maximum(value, 0.0), 2)


def _blank_out(rng: np.random.Generator, frame: pd.DataFrame, rates: dict[str, float]) -> None:
    """Real data has holes: blank out a fraction of some columns in place."""
    for column, rate in rates.items():
        frame.loc[rng.uniform(size=len(frame)) < rate, column] = np.nan
