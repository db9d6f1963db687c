"""Every valid combination renders, parses and contains exactly the expected files."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import DEFAULTS, ROOT, Bake, combinations, combo_id, unverified_pins
from jinja2 import Environment

TEMPLATE = ROOT / "{{cookiecutter.project_slug}}"
# Other tools' own template syntax that must survive rendering: GitHub Actions expressions
# and Argo Rollouts analysis arguments.
FOREIGN_TEMPLATES = re.compile(r"\$\{\{.*?\}\}|\{\{args\.[\w-]+\}\}")
JINJA_LEFTOVERS = ("{{", "{%", "{#", "cookiecutter.")
BINARY = {".bin", ".png", ".parquet"}
MATRIX = combinations()
# What a host-only bake does not carry (the post-gen hook removes it): the target's own files.
KUBERNETES_ONLY = ("deploy/kubernetes/", "deploy/gitops/", "tests/deployment/test_kubernetes.py")


def expected_files(project: Path) -> set[str]:
    """Template paths rendered with the baked context; an empty file name means 'not generated'."""
    context = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]
    env = Environment(keep_trailing_newline=True)
    expected = set()
    for path in TEMPLATE.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            relative = path.relative_to(TEMPLATE).as_posix()
            rendered = env.from_string(relative).render(cookiecutter=context)
            if not rendered.endswith("/") and Path(rendered).name:
                expected.add(rendered)
    if context["deploy_target"] == "local":
        return {path for path in expected if not path.startswith(KUBERNETES_ONLY)}
    assert {prefix for prefix in KUBERNETES_ONLY if any(p.startswith(prefix) for p in expected)} == set(
        KUBERNETES_ONLY
    )
    return expected


def baked_files(project: Path) -> set[str]:
    return {
        p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file() and ".git" not in p.parts
    }


def text_files(project: Path) -> list[Path]:
    return [p for p in project.rglob("*") if p.is_file() and p.suffix not in BINARY and ".git" not in p.parts]


@pytest.mark.parametrize("combo", MATRIX, ids=[combo_id(c) for c in MATRIX])
def test_bake__every_combination_renders_expected_files_that_parse(bake: Bake, combo: dict[str, str]) -> None:
    project = bake(**combo)
    assert project.name == "customer-churn"
    assert baked_files(project) == expected_files(project)
    assert (project / "src" / "customer_churn" / "__init__.py").is_file()
    assert (project / ".git").is_dir() is (combo["init_git"] == "yes")
    for path in text_files(project):
        text = path.read_text()
        unrendered = FOREIGN_TEMPLATES.sub("", text)
        leftovers = [m for m in JINJA_LEFTOVERS if m in unrendered and path.name != ".cookiecutter.json"]
        assert not leftovers, f"{path.relative_to(project)} still contains {leftovers}"
        assert_parses(path, text)
    assert unverified_pins(project / ".github") == []


def test_bake__the_templates_own_workflows_pin_verified_commits() -> None:
    assert unverified_pins(ROOT / ".github") == []


def test_bake__a_pin_that_is_not_its_tags_commit_is_found(tmp_path: Path) -> None:
    """The pin GitHub could not resolve: v3.0.0's commit under v4.1.0's comment (18 characters alike)."""
    workflow = tmp_path / ".github" / "workflows" / "sign.yml"
    workflow.parent.mkdir(parents=True)
    wrong = "actions/attest-build-provenance@977bb373ede98d70efbf0b7b13af9c3d6651dc60 # v4.1.0"
    right = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2"
    workflow.write_text(f"jobs:\n  sign:\n    steps:\n      - uses: {right}\n      - uses: {wrong}\n")
    assert [problem.split(": ")[1] for problem in unverified_pins(tmp_path / ".github")] == [wrong]


def assert_parses(path: Path, text: str) -> None:
    """Every structured file is valid in its own syntax."""
    if path.suffix in {".yaml", ".yml"}:
        list(yaml.safe_load_all(text))
    elif path.suffix == ".toml" or path.name == "uv.lock":
        tomllib.loads(text)
    elif path.suffix == ".json":
        json.loads(text)
    elif path.suffix == ".py":
        ast.parse(text, filename=str(path))


def test_bake__task_decides_target_metric_and_estimators(bake: Bake) -> None:
    regression = bake(ml_task="regression")
    config = yaml.safe_load((regression / "conf" / "config.yaml").read_text())
    assert config["task"] == "regression"
    assert (
        yaml.safe_load((regression / "conf" / "data" / "sample.yaml").read_text())["target"]
        == "lifetime_value"
    )
    assert (
        yaml.safe_load((regression / "conf" / "training" / "default.yaml").read_text())["primary_metric"]
        == "rmse"
    )
    forest = yaml.safe_load((regression / "conf" / "model" / "random_forest.yaml").read_text())
    assert forest["estimator"]["_target_"] == "sklearn.ensemble.RandomForestRegressor"
    assert (
        yaml.safe_load((regression / "data" / "sample" / "contract.yaml").read_text())["target"]
        == "lifetime_value"
    )


def test_bake__tracking_choice_picks_the_mlflow_config(bake: Bake) -> None:
    remote = bake(mlflow_tracking="remote", deploy_target="kubernetes")
    defaults = yaml.safe_load((remote / "conf" / "config.yaml").read_text())["defaults"]
    assert {"mlflow": "remote"} in defaults


def test_bake__project_keeps_its_answers_for_template_updates(bake: Bake) -> None:
    project = bake(project_name="Fraud Scoring", ml_task="regression")
    answers = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]
    assert answers["project_slug"] == "fraud-scoring"
    assert answers["ml_task"] == "regression"
    assert not [key for key in answers if key.startswith("_") and key != "_template"]


def test_bake__lock_names_the_project(bake: Bake) -> None:
    project = bake(project_name="Fraud Scoring")
    lock = tomllib.loads((project / "uv.lock").read_text())
    names = {package["name"] for package in lock["package"]}
    assert "fraud-scoring" in names
    assert {"mlflow", "bentoml", "whylogs", "scikit-learn", "hydra-core", "numpy"} <= names


HOSTILE = {
    "project_name": 'Ünïcode "Quoted" \\ Back\'slash: {braces} #hash',
    "description": "Says \"hi\" \\ and 'bye' — with ✓ and a: colon # not a comment",
    "author_name": 'O\'Brien "The \\ Builder" Ñandú',
}


def test_bake__hostile_free_text_still_gives_valid_files(bake: Bake) -> None:
    project = bake(**HOSTILE, project_slug="hostile-text")
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["description"] == HOSTILE["description"]
    assert pyproject["project"]["authors"][0]["name"] == HOSTILE["author_name"]
    answers = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]
    assert answers["project_name"] == HOSTILE["project_name"]
    for path in text_files(project):
        assert_parses(path, path.read_text())


def test_bake__what_stages_builds_and_secrets_write_stays_out_of_git(bake: Bake) -> None:
    project = bake(init_git="yes")
    written = [
        "labels/window-0.parquet",  # simulate-drift
        "profiles/production/a.bin",
        ".deploy/production/state.json",
        ".env",
        "dist/pkg.whl",
        "build/lib/x.py",
        "src/pkg.egg-info/PKG-INFO",
        ".coverage",
        "htmlcov/index.html",
        ".hypothesis/examples/x",
    ]
    for name in written:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text("x")
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout == ""


@pytest.mark.parametrize(
    ("project_name", "slug"),
    [
        ("Prédiction Clients", "prediction-clients"),
        ("Acme's Churn", "acme-s-churn"),
        ("Churn (EU)", "churn-eu"),
        ("churn.v2", "churn-v2"),
        ("Customer  Churn", "customer-churn"),
        ("CUSTOMER churn!", "customer-churn"),  # differs from the default only by case and punctuation
    ],
)
def test_bake__ordinary_names_bake_with_a_slug_and_package_made_from_them(
    bake: Bake, project_name: str, slug: str
) -> None:
    project = bake(project_name=project_name)
    assert project.name == slug
    assert (project / "src" / slug.replace("-", "_") / "__init__.py").is_file()
    assert tomllib.loads((project / "pyproject.toml").read_text())["project"]["name"] == slug


def test_bake__the_longest_names_bake_within_the_slug_limit(bake: Bake) -> None:
    project = bake(project_name="Quarterly Customer Lifetime Value Forecasting For Retail Banking Europe")
    assert project.name == "quarterly-customer-lifetime-value-forecasting-for"  # cut at a word, <= 50
    assert len(project.name) <= 50
    assert (project / "src" / project.name.replace("-", "_")).is_dir()


@pytest.mark.parametrize(
    ("license_id", "first_line", "spdx"),
    [
        ("MIT", "MIT License", "MIT"),
        ("Apache-2.0", "Apache License", "Apache-2.0"),
        ("BSD-3-Clause", "BSD 3-Clause License", "BSD-3-Clause"),
        ("Proprietary", "Copyright (c)", "LicenseRef-Proprietary"),
    ],
)
def test_bake__the_licence_choice_writes_its_text_and_metadata(
    bake: Bake, license_id: str, first_line: str, spdx: str
) -> None:
    project = bake(license=license_id, author_name="Acme Analytics")
    text = (project / "LICENSE").read_text()
    assert text.lstrip().startswith(first_line)
    assert "{%" not in text
    if license_id != "Apache-2.0":  # Apache's text names no holder; its appendix shows how
        assert re.search(r"Copyright \(c\) \d{4},? Acme Analytics", text)
    project_table = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert project_table["license"] == spdx
    assert project_table["license-files"] == ["LICENSE"]


@pytest.mark.parametrize("version", DEFAULTS["python_version"])
def test_bake__python_version_is_named_the_same_everywhere(bake: Bake, version: str) -> None:
    project = bake(python_version=version)
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    lock = tomllib.loads((project / "uv.lock").read_text())
    setup = yaml.safe_load((project / ".github" / "actions" / "setup" / "action.yml").read_text())
    python_step = next(s for s in setup["runs"]["steps"] if "setup-python" in s.get("uses", ""))
    assert (project / ".python-version").read_text().strip() == version
    assert pyproject["project"]["requires-python"] == f">={version}"
    assert lock["requires-python"] == f">={version}"
    assert pyproject["tool"]["ruff"]["target-version"] == f"py{version.replace('.', '')}"
    assert pyproject["tool"]["mypy"]["python_version"] == version
    assert python_step["with"] == {"python-version-file": ".python-version"}
    packaging = (project / "src" / "customer_churn" / "serving" / "packaging.py").read_text()
    assert 'docker={"python_version": project_python()}' in packaging  # the image's base follows it


def test_bake__each_python_choice_has_a_lock_of_its_own() -> None:
    """The lock is chosen at bake time from templates/locks: one per choice, none left over."""
    locks = {path.stem for path in (ROOT / "templates" / "locks").glob("*.lock")}
    assert locks == {f"py{version}" for version in DEFAULTS["python_version"]}


def test_bake__the_matrix_has_one_bake_per_distinct_tree(bake: Bake) -> None:
    """Each combination must change some file: a bake that repeats another's tree costs time only."""
    digests = {}
    for combo in MATRIX:
        project = bake(**combo)
        tree = sorted(
            (path.relative_to(project).as_posix(), hashlib.sha256(path.read_bytes()).hexdigest())
            for path in project.rglob("*")
            if path.is_file() and ".git" not in path.parts and path.name != ".cookiecutter.json"
        )
        digests[combo_id(combo)] = hashlib.sha256(repr(tree).encode()).hexdigest()
        shutil.rmtree(project)
    assert len(set(digests.values())) == len(MATRIX), digests


def interpreter(version: str) -> str | None:
    """A working ``python<version>`` here: on PATH, else among pyenv's versions (None if neither)."""
    pyenv = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))
    for candidate in [shutil.which(f"python{version}"), *map(str, pyenv)]:
        if (
            candidate
            and subprocess.run([candidate, "-c", ""], capture_output=True, check=False).returncode == 0
        ):
            return candidate
    return None


@pytest.mark.parametrize("version", DEFAULTS["python_version"])
def test_bake__each_python_choice_gets_a_lock_uv_accepts_as_is(bake: Bake, version: str) -> None:
    found = interpreter(version)
    if found is None:
        pytest.skip(f"no Python {version} on this machine to resolve the lock with")
    project = bake(python_version=version)
    checked = subprocess.run(
        [str(Path(sys.executable).with_name("uv")), "lock", "--check", "--python", found],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
