"""Command-line entry points, one per stage: compose config, call the stage, report, exit.

Each is a Hydra app, so every config value can be overridden on the command line
(``train model=hgb data.path=data/other.parquet``) and ``-m`` runs sweeps. Expected failures
(any :class:`~.errors.PipelineError`) print one clear message and exit 1; they never print a
traceback. Each stage imports its own modules when it runs, so ``validate-data`` does not pay
for MLflow, BentoML and whylogs at start-up.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from .config import (
    CONF_DIR,
    PROJECT_ROOT,
    Config,
    ConfigError,
    DataConfig,
    ValidationConfig,
    check_renamed,
    register,
    report_root,
    resolve,
    to_typed,
)
from .errors import PipelineError
from .reports import ci_page, jsonfile, tables

if TYPE_CHECKING:
    from .serving.packaging import Packaged

register()
CONF = str(CONF_DIR)
EXPECTED = (PipelineError, FileNotFoundError)


def stage(name: str) -> Callable[[Callable[[Config], int]], Callable[[DictConfig], int]]:
    """Wrap a stage: typed config in, timing and one-line errors out, exit code returned."""

    def wrap(body: Callable[[Config], int]) -> Callable[[DictConfig], int]:
        @wraps(body)
        def run(raw: DictConfig) -> int:
            started = time.perf_counter()
            print(f"[{name}] started", flush=True)
            cfg: Config | None = None
            try:
                cfg = to_typed(raw)
                code = body(cfg)
            except EXPECTED as error:
                print(f"[{name}] error: {error}", file=sys.stderr, flush=True)
                jsonfile.record_failure(report_root(cfg), name, str(error))  # for the job's summary
                code = 1
            status = "ok" if code == 0 else "FAILED"
            print(f"[{name}] {status} in {time.perf_counter() - started:.1f}s", flush=True)
            if code:
                sys.exit(code)
            return code

        return run

    return wrap


@stage("validate-data")
def _validate_data(cfg: Config) -> int:
    from . import validation

    report = validation.validate_file(cfg.data, cfg.validation)
    json_path, _ = validation.write_report(report, cfg.validation.report_dir)
    for violation in report.violations:
        print(f"  {violation.column}: {violation.rule}: {violation.detail}", file=sys.stderr)
    if any(v.rule in {"present", "unexpected", "contract"} for v in report.violations):
        print(
            "  not the table this contract describes? adopt it: "
            "`nox -s adopt-data -- data.path=<file> data.target=<column>`",
            file=sys.stderr,
        )
    print(f"  {report.rows} rows, {len(report.violations)} violations; report: {json_path}")
    return 0 if report.passed else 1


@stage("derive-contract")
def _derive_contract(cfg: Config) -> int:
    from . import profiling, validation
    from .data import load_dataset

    sample = DataConfig().path
    if cfg.data.path != sample and cfg.validation.contract_path == ValidationConfig().contract_path:
        raise ConfigError(
            f"derive-contract would write {cfg.data.path}'s contract over the sample's: adopt a new table "
            "with `nox -s adopt-data -- data.path=<file> data.target=<column>` (files of its own), or "
            "set validation.contract_path and validation.reference_profile"
        )
    frame = load_dataset(cfg.data)
    contract = validation.derive_contract(frame, cfg.data)
    path = contract.save(cfg.validation.contract_path)
    profile_path = profiling.write(
        profiling.profile(frame[list(contract.columns)]), resolve(cfg.validation.reference_profile)
    )
    print(f"  contract: {path}\n  reference profile: {profile_path}")
    return 0


@stage("adopt-data")
def _adopt_data(cfg: Config) -> int:
    from . import adopt, evaluation

    adoption = adopt.adopt(cfg.data, classification=cfg.task == evaluation.CLASSIFICATION)
    rows = [(c.name, c.kind, c.role, c.nulls, c.distinct, c.reason) for c in adoption.columns]
    print(tables.table(["column", "kind", "role", "nulls", "distinct", "why dropped"], rows))
    for diff in adoption.written.values():
        print(diff, end="")
    if adoption.whole_numbers:
        print(
            f"  {', '.join(adoption.whole_numbers)}: whole numbers in the table, so the service takes whole "
            "numbers only for them; write them with decimals if fractions are valid"
        )
    if adoption.dropped_missing_target:
        print(f"  {adoption.dropped_missing_target} rows have no target: drop_missing_target is on")
    print(
        f"  {len(adoption.features)} features; conf/config.yaml now uses data={adoption.name} and "
        f"validation={adoption.name}.\n  Review the diff, then: nox -s validate-data train compare"
    )
    return 0


@stage("train")
def _train(cfg: Config) -> int:
    from .training import train

    result = train.train(cfg)
    path = train.write_result(result, cfg.training.report_dir)
    metric = cfg.training.primary_metric
    score = f"test {metric}={result.metrics[metric]:.4f} (cv {result.cv_mean:.4f})"
    if result.dropped_missing_target:
        print(f"  dropped {result.dropped_missing_target} rows without a target (data.drop_missing_target)")
    print(f"  {cfg.model.name}: {score}; run {result.run_id}")
    if result.registered_as_candidate:
        print(f"  {result.model_name} v{result.model_version} {result.standing}; report: {path}")
    else:  # below the bar fails the stage; a model no better than the candidate is a decision
        print(f"  {result.standing}; report: {path}", file=sys.stderr if result.below_bar else sys.stdout)
    return 1 if result.below_bar else 0


@stage("compare")
def _compare(cfg: Config) -> int:
    from .training import selection

    decision = selection.compare(cfg)
    path = decision.write(resolve(cfg.training.report_dir) / "gate.json")
    verdict = "PROMOTE" if decision.promote else "KEEP CHAMPION"
    print(f"  {verdict}: {decision.reason}; decision: {path}")
    return 0


@stage("predict")
def _predict(cfg: Config) -> int:
    from .training import inference

    path = inference.predict_file(cfg, cfg.inference.input, cfg.inference.output, cfg.inference.model_alias)
    print(f"  predictions: {path}")
    return 0


@stage("summary")
def _summary(cfg: Config) -> int:
    path = ci_page.publish(report_root(cfg))
    print(f"  dashboard: {path}")
    return 0


@stage("monitor")
def _monitor(cfg: Config) -> int:
    from .monitoring import dashboards, health, monitor

    service = health.collect(cfg.monitoring)
    checked = monitor.monitor(cfg, service)
    paths = dashboards.write(checked, cfg.monitoring.report_dir)
    dashboards.publish(checked.result, paths)
    for alert in checked.result.alerts:
        print(f"  ALERT {alert}")
    print(f"  {dashboards.headline(checked.result)}\n  report: {paths.html}")
    return 3 if checked.result.drift_detected and cfg.monitoring.fail_on_drift else 0


@stage("simulate-drift")
def _simulate_drift(cfg: Config) -> int:
    from .monitoring import replay

    done = replay.replay(cfg)
    print(f"  replayed {done.rows} rows ({done.shift} shift) over {done.windows} windows via {done.via}")
    if done.profiles:
        print(f"  profiles: {cfg.monitoring.profile_dir}; labels: {done.labels}")
    else:
        print(f"  labels: {done.labels}; the service writes its profiles every serving.profile_window_s")
    return 0


@stage("package")
def _package(cfg: Config) -> int:
    from .serving import packaging

    built = packaging.package(cfg)
    path = packaging.write_summary(built, cfg.serving.report_dir)
    sbom = packaging.write_sbom(cfg.serving.report_dir)
    print(f"  bento {built.bento_tag} (model v{built.labels['model_version']}, run {built.labels['run_id']})")
    store = os.environ.get("BENTOML_HOME", ".bentoml")
    print(f"  serve it: BENTOML_HOME={resolve(store)} uv run bentoml serve {built.bento_tag} --port 3000")
    print(f"  summary: {path}")
    print(f"  SBOM of its packages (CycloneDX, from uv.lock): {sbom}")
    _print_example(cfg, built)
    return 0


def _print_example(cfg: Config, built: Packaged) -> None:
    """A request the served bento answers, from a real row of the table, and the curl that sends it."""
    from .serving import packaging
    from .serving.example import NoExampleError

    try:
        example = packaging.write_example(cfg, built)
    except NoExampleError as error:
        print(f"  no request example written: {error}")
        return
    shown = _shown(example.path)
    print(f"  a request it answers, from data row {example.row} of {cfg.data.path} ({shown}):")
    print(f"  {example.text}")
    print(f"  curl -s localhost:3000/predict -H 'content-type: application/json' -d @{shown}")


def _shown(path: Path) -> str:
    """A path as the user types it from the project folder: relative when inside it."""
    try:
        return path.resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)


@stage("containerize")
def _containerize(cfg: Config) -> int:
    from . import tools
    from .serving import packaging

    bento = packaging.latest_bento(cfg.mlflow.model_name)
    engine = tools.container_engine()
    if engine.name is None:
        print(f"  skipped: no container engine ({engine.reason}); the bento {bento} is built")
        return 0
    image = packaging.containerize(
        bento, packaging.image_reference(cfg.serving.image_repository, bento), engine.name
    )
    path = packaging.write_image(image, cfg.serving.report_dir)
    print(f"  image {image.reference} ({image.image_id[:19]}, {image.size_mb:,.0f} MB) by {image.engine}")
    print(f"  built in {image.build_s:.0f}s; report: {path}")
    return 0


@stage("doctor")
def _doctor(cfg: Config) -> int:
    from . import doctor

    findings = doctor.examine(cfg)
    verdicts = {True: "ok", False: "MISSING", None: "unchecked"}
    rows = [(f.name, verdicts[f.ok], f.detail) for f in findings]
    print(tables.table(["check", "", "found, or what to do"], rows))
    missing = sum(f.ok is False for f in findings)
    print(f"  {missing or 'nothing'} to fix here; GitHub's settings: README.md, 'Connect to GitHub'")
    return 1 if missing else 0


def _app(body: Callable[[DictConfig], int], *, sweeps: bool = False) -> Callable[[], None]:
    """Bind a stage to the project's conf/ tree as a Hydra application.

    ``sweeps``: ``-m`` runs of this stage open a parent MLflow run and crown the best trial
    (:mod:`.training.sweep`); the other stages share the config but log no runs.
    """
    app: Callable[[], None] = hydra.main(config_path=CONF, config_name="config", version_base="1.3")(body)  # type: ignore[arg-type,assignment]

    @wraps(body)
    def run() -> None:
        try:
            check_renamed(sys.argv[1:])
        except ConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)
        if sweeps:
            from .training import sweep

            sweep.arm()
        app()

    return run


adopt_data = _app(_adopt_data)
validate_data = _app(_validate_data)
derive_contract = _app(_derive_contract)
train = _app(_train, sweeps=True)
compare = _app(_compare)
predict = _app(_predict)
monitor = _app(_monitor)
simulate_drift = _app(_simulate_drift)
summary = _app(_summary)
package = _app(_package)
containerize = _app(_containerize)
doctor = _app(_doctor)
