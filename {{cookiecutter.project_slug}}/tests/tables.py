"""Tables that are not the sample, made by the tests: the shapes users bring.

``penguins`` is a 3-class table (344 rows, missing values, two categoricals, an id, a constant, a
date and free text); ``cars`` is a regression table (406 rows, missing targets, a free-text name
with hundreds of values, a date string). Both follow the public tables of the same names in
shape, not in values: the rows are drawn from a fixed seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SPECIES = {"Adelie": (38.8, 3700.0), "Gentoo": (47.5, 5076.0), "Chinstrap": (48.8, 3733.0)}


def penguins(rows: int = 344, seed: int = 0) -> pd.DataFrame:
    """A 3-class table: species from bill length and body mass, with the columns users forget."""
    rng = np.random.default_rng(seed)
    species = rng.choice(list(SPECIES), rows, p=[0.44, 0.36, 0.2])
    bill = np.array([SPECIES[s][0] for s in species]) + rng.normal(0, 2.5, rows)
    bill[rng.choice(rows, 5, replace=False)] = np.nan
    mass = np.array([SPECIES[s][1] for s in species]) + rng.normal(0, 400, rows)
    return pd.DataFrame(
        {
            "penguin_id": [f"P{i:04d}" for i in range(rows)],
            "species": species,
            "island": rng.choice(["Biscoe", "Dream", "Torgersen"], rows),
            "bill_length_mm": bill.round(1),
            "body_mass_g": mass.round(0),
            "sex": rng.choice(np.array(["male", "female", None], dtype=object), rows, p=[0.48, 0.48, 0.04]),
            "colony": "north",
            "observed": pd.date_range("2024-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
            "note": [f"seen near nest {i} by observer {rng.integers(100)}" for i in range(rows)],
        }
    )


def cars(rows: int = 406, seed: int = 0) -> pd.DataFrame:
    """A regression table: fuel economy from the engine, with missing targets and a free-text name."""
    rng = np.random.default_rng(seed)
    cylinders = rng.choice([4, 6, 8], rows, p=[0.5, 0.25, 0.25])
    weight = 1500 + 450 * cylinders + rng.normal(0, 300, rows)
    horsepower = 20 * cylinders + rng.normal(0, 15, rows)
    horsepower[rng.choice(rows, 6, replace=False)] = np.nan
    mpg = 50 - 0.006 * weight - 0.05 * np.nan_to_num(horsepower, nan=100) + rng.normal(0, 2, rows)
    mpg[rng.choice(rows, 8, replace=False)] = np.nan
    return pd.DataFrame(
        {
            "mpg": mpg.round(1),
            "cylinders": cylinders,
            "horsepower": horsepower.round(0),
            "weight": weight.round(0),
            "origin": rng.choice(["usa", "europe", "japan"], rows),
            "name": [f"make{rng.integers(40)} model {i}" for i in range(rows)],
            "built": pd.date_range("1970-01-01", periods=rows, freq="W").strftime("%Y-%m-%d"),
        }
    )


def in_target_order(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """The rows sorted by the target, numbered as exports number them: ``row`` 1..N, ``ticket`` 100, 110, ...

    The shape of a public diamonds table whose first column counts rows already in price order.
    """
    ordered = frame.sort_values(target, kind="stable").reset_index(drop=True)
    rows = len(ordered)
    return ordered.assign(row=np.arange(1, rows + 1), ticket=np.arange(100, 100 + 10 * rows, 10))


def own_table(task: str) -> tuple[pd.DataFrame, str]:
    """The table for a project's task, and its target column."""
    return (penguins(), "species") if task == "classification" else (cars(), "mpg")
