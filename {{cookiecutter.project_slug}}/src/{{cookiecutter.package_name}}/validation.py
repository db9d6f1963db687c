"""The data gate: a committed contract plus a distribution check, before any training.

The contract (``data/sample/contract.yaml``) is derived once from reference data and then
edited and reviewed like code. Every rule is a small pure function returning violations, so a
bad file yields one report naming each failing column and rule, not just the first problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from . import drift, profiling
from .config import DataConfig, ValidationConfig, resolve
from .data import DataError, drop_missing_target, feature_columns, load_table
from .reports import jsonfile, tables

NUMERIC, CATEGORICAL = "numeric", "categorical"


@dataclass
class ColumnContract:
    """What one column may contain.

    ``min``/``max`` are the range the data gate expects (the reference's own, padded); the
    monitor flags production values outside it. ``allowed_min``/``allowed_max`` are what a value
    can be at all (a negative count, a tenure below zero): the service refuses values outside
    them with a 400, so nothing impossible is scored.
    """

    kind: str
    max_null_fraction: float = 0.0
    min: float | None = None
    max: float | None = None
    allowed_min: float | None = None
    allowed_max: float | None = None
    categories: list[str] | None = None


@dataclass
class Contract:
    """What a whole table must look like to be trained on."""

    target: str
    columns: dict[str, ColumnContract]
    min_rows: int = 100
    max_duplicate_fraction: float = 0.01

    def to_yaml(self) -> str:
        """The contract as YAML, the form people review in pull requests."""
        return yaml.safe_dump(asdict(self), sort_keys=False)

    def save(self, path: str | Path) -> Path:
        """Write the contract's YAML to ``path``."""
        target = resolve(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.to_yaml())
        return target

    @classmethod
    def load(cls, path: str | Path) -> Contract:
        """Read a contract written by :meth:`save` (or by hand)."""
        raw = yaml.safe_load(resolve(path).read_text())
        columns = {name: ColumnContract(**spec) for name, spec in raw.pop("columns").items()}
        return cls(columns=columns, **raw)


@dataclass(frozen=True)
class Violation:
    """One broken rule: which column, which rule, what was found and what to do."""

    column: str
    rule: str
    detail: str


@dataclass
class ValidationReport:
    """Everything the gate found; ``passed`` is what the pipeline acts on."""

    path: str
    rows: int
    violations: list[Violation] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No rule broken."""
        return not self.violations


def derive_contract(frame: pd.DataFrame, cfg: DataConfig) -> Contract:
    """Describe reference data generously enough that fresh data from the same source passes."""
    if missing := int(frame[cfg.target].isna().sum()):
        raise DataError(
            f"{cfg.path}: {missing} rows have no {cfg.target!r}; a contract describes a trainable "
            "table: fill them, or set data.drop_missing_target=true"
        )
    excluded = {cfg.id_column, *cfg.drop_columns}
    columns = {name: _derive_column(frame[name]) for name in frame.columns if name not in excluded}
    return Contract(target=cfg.target, columns=columns, min_rows=min(100, len(frame)))


def _derive_column(series: pd.Series) -> ColumnContract:
    """Ranges padded by 10% of the span; null budget with slack.

    A column never negative in the reference is taken to be a quantity (a count, an amount, a
    duration): its range stops at zero and the service refuses negative values outright.
    """
    null_budget = round(min(1.0, max(0.05, 2 * float(series.isna().mean()))), 4)
    if pd.api.types.is_numeric_dtype(series):
        low, high = float(series.min()), float(series.max())
        pad = 0.1 * (high - low)
        floor = max(low - pad, 0.0) if low >= 0 else low - pad
        allowed_min = 0.0 if low >= 0 else None
        return ColumnContract(NUMERIC, null_budget, round(floor, 6), round(high + pad, 6), allowed_min)
    categories = sorted(str(value) for value in series.dropna().unique())
    return ColumnContract(CATEGORICAL, null_budget, categories=categories)


def check_columns_present(frame: pd.DataFrame, contract: Contract) -> list[Violation]:
    """Every contract column (the target included) must exist."""
    return [
        Violation(name, "present", "column is missing; add it or remove it from the contract")
        for name in contract.columns
        if name not in frame.columns
    ]


def check_rows(frame: pd.DataFrame, contract: Contract) -> list[Violation]:
    """Enough rows to train and evaluate on; not too many exact duplicates."""
    found = []
    if len(frame) < contract.min_rows:
        found.append(
            Violation("*", "min_rows", f"{len(frame)} rows, the contract needs at least {contract.min_rows}")
        )
    duplicates = float(frame.duplicated().mean()) if len(frame) else 0.0
    if duplicates > contract.max_duplicate_fraction:
        found.append(
            Violation(
                "*",
                "duplicates",
                f"{duplicates:.1%} duplicate rows, budget {contract.max_duplicate_fraction:.1%}",
            )
        )
    return found


def check_column(name: str, series: pd.Series, spec: ColumnContract) -> list[Violation]:
    """Null budget, then type, then range or categories (each only if the previous holds)."""
    null_fraction = float(series.isna().mean())
    if null_fraction > spec.max_null_fraction:
        label = "all values are missing" if null_fraction == 1 else f"{null_fraction:.1%} missing"
        return [Violation(name, "nulls", f"{label}, budget {spec.max_null_fraction:.1%}")]
    values = series.dropna()
    if spec.kind == NUMERIC:
        return _check_numeric(name, values, spec)
    return _check_categories(name, values, spec)


def _check_numeric(name: str, values: pd.Series, spec: ColumnContract) -> list[Violation]:
    """Numbers only, within [min, max]."""
    if not pd.api.types.is_numeric_dtype(values):
        bad = values[pd.to_numeric(values, errors="coerce").isna()].astype(str).unique()[:3]
        return [Violation(name, "dtype", f"expected numbers, found text such as {list(bad)}")]
    low, high = spec.min, spec.max
    outside = values[
        ((values < low) if low is not None else False) | ((values > high) if high is not None else False)
    ]
    if outside.empty:
        return []
    example = float(outside.iloc[0])
    return [Violation(name, "range", f"{len(outside)} values outside [{low}, {high}], e.g. {example:g}")]


def _check_categories(name: str, values: pd.Series, spec: ColumnContract) -> list[Violation]:
    """Only categories the contract lists (new ones must be added to the contract on purpose)."""
    if spec.categories is None:
        return []
    unseen = sorted(set(values.astype(str)) - set(spec.categories))
    if not unseen:
        return []
    allowed = spec.categories[:10] + (
        [f"... {len(spec.categories) - 10} more"] if len(spec.categories) > 10 else []
    )
    detail = f"{len(unseen)} unseen categories, e.g. {unseen[:5]}; allowed: {allowed}"
    return [Violation(name, "categories", f"{detail}: add them to the contract if they are real")]


def check_target(frame: pd.DataFrame, contract: Contract) -> list[Violation]:
    """A trainable target: present on every row and not a single value."""
    if contract.target not in frame.columns:
        return []  # reported by check_columns_present
    target = frame[contract.target]
    if target.isna().any():
        missing = int(target.isna().sum())
        detail = f"{missing} rows have no target value: fill them, or set data.drop_missing_target=true"
        return [Violation(contract.target, "target", detail)]
    if target.nunique() < 2:
        return [Violation(contract.target, "target", "the target is constant: nothing to learn")]
    return []


def check_contract_fits(frame: pd.DataFrame, contract: Contract, data: DataConfig) -> list[Violation]:
    """The contract is this table's: same target, and no feature it does not describe.

    A column the contract does not know would become a feature unreviewed (and change what the
    service accepts), so it is refused until it is dropped or the contract is derived again.
    """
    if contract.target != data.target:
        return [
            Violation(
                data.target,
                "contract",
                f"the contract is for target {contract.target!r}, not data.target={data.target!r}: "
                "point validation.contract_path at this table's contract, or make one with "
                "`nox -s adopt-data -- path=<table> target=<column>`",
            )
        ]
    return [
        Violation(
            name,
            "unexpected",
            "column is not in the contract: list it in data.drop_columns to leave it out, or add "
            "it to the contract to train on it",
        )
        for name in feature_columns(frame, data)
        if name not in contract.columns
    ]


def check_distribution(
    frame: pd.DataFrame, contract: Contract, cfg: ValidationConfig
) -> list[drift.ColumnDrift]:
    """Compare the table's whylogs profile with the committed reference profile."""
    reference = profiling.read(resolve(cfg.reference_profile))
    present = [name for name in contract.columns if name in frame.columns]
    return drift.compare(reference, profiling.profile(frame[present]), present, cfg.max_drift)


RULES: tuple[Callable[[pd.DataFrame, Contract], list[Violation]], ...] = (
    check_columns_present,
    check_rows,
    check_target,
)


def validate_frame(
    frame: pd.DataFrame, contract: Contract, cfg: ValidationConfig, data: DataConfig
) -> ValidationReport:
    """Run every rule; the distribution check runs only on data that passed the contract."""
    report = ValidationReport(path=data.path, rows=len(frame))
    report.violations = check_contract_fits(frame, contract, data)
    report.violations += [v for rule in RULES for v in rule(frame, contract)]
    for name, spec in contract.columns.items():
        if name in frame.columns:
            report.violations += check_column(name, frame[name], spec)
    if report.passed:
        distances = check_distribution(frame, contract, cfg)
        report.drift = [asdict(d) | {"drifted": d.drifted} for d in distances]
        report.violations += [
            Violation(d.column, "drift", f"{d.kind} distance {d.statistic:.3f} > {d.threshold}")
            for d in distances
            if d.drifted
        ]
    return report


def validate_file(data: DataConfig, cfg: ValidationConfig) -> ValidationReport:
    """Load and validate a table; an unreadable file is a violation too, not a crash."""
    contract = Contract.load(cfg.contract_path)
    try:
        frame = drop_missing_target(load_table(data.path), data)  # a missing target: a violation
    except DataError as error:
        return ValidationReport(path=data.path, rows=0, violations=[Violation("*", "readable", str(error))])
    return validate_frame(frame, contract, cfg, data)


def write_report(report: ValidationReport, report_dir: str | Path) -> tuple[Path, Path]:
    """Write ``validation.json`` (for CI) and ``validation.md`` (for the job summary)."""
    folder = resolve(report_dir)
    folder.mkdir(parents=True, exist_ok=True)
    payload = asdict(report) | {"passed": report.passed}
    json_path = folder / "validation.json"
    jsonfile.write_json(payload, json_path)
    md_path = folder / "validation.md"
    md_path.write_text(render_markdown(report))
    return json_path, md_path


def render_markdown(report: ValidationReport) -> str:
    """A table a reviewer can read in a job summary."""
    status = "passed" if report.passed else "FAILED"
    lines = [f"### Data validation {status}", "", f"`{report.path}`: {report.rows} rows", ""]
    if report.violations:
        violations = [(f"`{v.column}`", v.rule, v.detail) for v in report.violations]
        lines.append(tables.table(["column", "rule", "detail"], violations))
    if report.drift:
        header = ["column", "kind", "distance", "threshold"]
        moved = [
            (f"`{d['column']}`", d["kind"], round(d["statistic"], 3), d["threshold"]) for d in report.drift
        ]
        lines += ["", tables.table(header, moved)]
    return "\n".join(lines) + "\n"
