"""The data gate: good data passes; each kind of bad data is refused with its column and rule."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import validation
from {{ cookiecutter.package_name }}.config import Config
from {{ cookiecutter.package_name }}.simulation import make_customers

Corrupt = Callable[[pd.DataFrame], pd.DataFrame]
TARGET = "{{ 'churned' if cookiecutter.ml_task == 'classification' else 'lifetime_value' }}"


def validate(cfg: Config, path: Path) -> validation.ValidationReport:
    cfg.data.path = str(path)
    return validation.validate_file(cfg.data, cfg.validation)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def rules(report: validation.ValidationReport) -> set[tuple[str, str]]:
    return {(v.column, v.rule) for v in report.violations}


def test_validate__sample_data_passes(quick: Config) -> None:
    report = validation.validate_file(quick.data, quick.validation)
    assert report.passed, report.violations
    assert report.rows == 3000
    assert {d["column"] for d in report.drift} >= {"tenure_months", "contract"}


def test_validate__fresh_data_from_the_same_source_passes(quick: Config, tmp_path: Path) -> None:
    report = validate(quick, write_csv(make_customers(1500, seed=99), tmp_path / "fresh.csv"))
    assert report.passed, report.violations


def test_validate__parquet_is_read_like_csv(quick: Config, tmp_path: Path, sample: pd.DataFrame) -> None:
    sample.to_parquet(tmp_path / "sample.parquet", index=False)
    assert validate(quick, tmp_path / "sample.parquet").passed


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        pytest.param(lambda f: f.drop(columns=["contract"]), ("contract", "present"), id="missing-column"),
        pytest.param(
            lambda f: f.assign(monthly_charges=f["monthly_charges"].astype(str).str.replace("5", "five")),
            ("monthly_charges", "dtype"),
            id="wrong-dtype",
        ),
        pytest.param(lambda f: f.assign(region=np.nan), ("region", "nulls"), id="all-null-column"),
        pytest.param(
            lambda f: f.assign(tenure_months=f["tenure_months"] + 500),
            ("tenure_months", "range"),
            id="out-of-range",
        ),
        pytest.param(
            lambda f: f.assign(contract=f["contract"].replace("two-year", "lifetime")),
            ("contract", "categories"),
            id="unseen-category",
        ),
        pytest.param(lambda f: f.head(20), ("*", "min_rows"), id="too-few-rows"),
        pytest.param(lambda f: pd.concat([f, f.head(300)]), ("*", "duplicates"), id="duplicate-rows"),
        pytest.param(
            lambda f: f.assign(**{TARGET: f[TARGET].iloc[0]}), (TARGET, "target"), id="constant-target"
        ),
        pytest.param(
            lambda f: f.assign(tenure_months=f["tenure_months"].clip(upper=6)),
            ("tenure_months", "drift"),
            id="drifted",
        ),
    ],
)
def test_validate__bad_data_is_refused_naming_column_and_rule(
    quick: Config, tmp_path: Path, sample: pd.DataFrame, corrupt: Corrupt, expected: tuple[str, str]
) -> None:
    report = validate(quick, write_csv(corrupt(sample.copy()), tmp_path / "bad.csv"))
    assert not report.passed
    assert expected in rules(report)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "empty"),
        ("header.csv", b"customer_id,tenure_months,contract\n", "no data rows"),
        ("garbage.parquet", b"\x00\x01 not parquet at all", "cannot be read"),
        ("table.xlsx", b"whatever", "unsupported file type"),
    ],
)
def test_validate__unusable_file_is_refused_with_a_reason(
    quick: Config, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    (tmp_path / name).write_bytes(content)
    report = validate(quick, tmp_path / name)
    assert rules(report) == {("*", "readable")}
    assert message in report.violations[0].detail


def test_validate__missing_file_is_refused(quick: Config, tmp_path: Path) -> None:
    report = validate(quick, tmp_path / "nope.csv")
    assert "no such file" in report.violations[0].detail


def test_validate__report_files_name_each_failure(
    quick: Config, tmp_path: Path, sample: pd.DataFrame
) -> None:
    report = validate(quick, write_csv(sample.drop(columns=["region"]), tmp_path / "bad.csv"))
    json_path, md_path = validation.write_report(report, quick.validation.report_dir)
    assert '"passed": false' in json_path.read_text()
    assert "| `region` | present |" in md_path.read_text()


def test_contract__round_trips_through_yaml(quick: Config, tmp_path: Path, sample: pd.DataFrame) -> None:
    contract = validation.derive_contract(sample, quick.data)
    assert validation.Contract.load(contract.save(tmp_path / "contract.yaml")) == contract
    assert "customer_id" not in contract.columns


def test_contract__a_column_never_negative_may_not_go_below_zero(quick: Config, sample: pd.DataFrame) -> None:
    shifted = sample.assign(monthly_charges=sample["monthly_charges"] - 1000)  # negative in the data
    derived = validation.derive_contract(shifted, quick.data).columns
    assert derived["tenure_months"].allowed_min == 0.0
    assert derived["monthly_charges"].allowed_min is None
    assert derived["contract"].allowed_min is None
    assert derived["tenure_months"].allowed_max is None
