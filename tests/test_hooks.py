"""The pre-generation hook refuses bad input with a fix; the post-generation one never costs the bake."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from conftest import DEFAULTS, PRE_GEN, ROOT, Bake
from cookiecutter.exceptions import FailedHookException

VALID = {
    "project_slug": "customer-churn",
    "package_name": "customer_churn",
    "author_email": "ml@example.com",
    "github_owner": "example-org",
    "project_name": "Customer Churn",
    "description": "A model.",
    "author_name": "Team",
    "deploy_target": "local",
    "mlflow_tracking": "local",
}


def test_hooks__valid_input_has_no_problems() -> None:
    assert PRE_GEN.problems(VALID) == []


@pytest.mark.parametrize(
    ("field", "value", "hint"),
    [
        ("project_slug", "Customer Churn", "lower-case"),
        ("project_slug", "-churn", "starting with a letter"),
        ("project_slug", "churn--model", "single hyphens"),
        ("project_slug", "x" * 51, "1-50"),
        ("package_name", "2churn", "identifier"),
        ("package_name", "churn-model", "identifier"),
        ("package_name", "class", "keyword"),
        ("package_name", "match", "keyword"),
        ("package_name", "json", "shadow"),
        ("package_name", "mlflow", "shadow"),
        ("package_name", "pandas", "a dependency's module"),
        ("package_name", "numpy", "a dependency's module"),
        ("package_name", "yaml", "a dependency's module"),  # pyyaml's module
        ("package_name", "sklearn", "a dependency's module"),  # scikit-learn's module
        ("package_name", "pytest", "a dependency's module"),
        ("package_name", "nox", "the project's own folder or tool"),
        ("package_name", "tests", "the project's own folder or tool"),
        ("package_name", "json", "the standard library"),
        ("project_slug", "scikit-learn", "one of the project's own dependencies"),
        ("project_slug", "2024-churn", "Start the project name with a letter"),
        ("package_name", "Churn", "lower-case"),
        ("package_name", "çhurn", "ASCII"),
        ("author_email", "not-an-email", "name@example.com"),
        ("github_owner", "bad owner!", "GitHub"),
        ("description", "two\nlines", "single line"),
    ],
)
def test_hooks__invalid_field_is_refused_with_a_fix(field: str, value: str, hint: str) -> None:
    found = PRE_GEN.problems(VALID | {field: value})
    assert len(found) == 1
    assert field in found[0]
    assert hint in found[0]


@pytest.mark.parametrize("deploy_target", ["kubernetes", "both"])
def test_hooks__cluster_deploys_need_a_shared_registry(deploy_target: str) -> None:
    found = PRE_GEN.problems(VALID | {"deploy_target": deploy_target})
    assert found
    assert "mlflow_tracking='remote'" in found[0]
    assert PRE_GEN.problems(VALID | {"deploy_target": deploy_target, "mlflow_tracking": "remote"}) == []


def test_hooks__all_problems_are_reported_at_once() -> None:
    assert len(PRE_GEN.problems(VALID | {"project_slug": "Bad Slug", "author_email": "nope"})) == 2


@pytest.mark.parametrize(
    "context",
    [
        {"project_slug": "Bad Slug"},
        {"package_name": "import"},
        {"deploy_target": "kubernetes", "mlflow_tracking": "local"},
    ],
    ids=["slug", "keyword", "unsupported-combination"],
)
def test_hooks__baking_with_invalid_input_fails_and_writes_nothing(
    bake: Bake, context: dict[str, str], tmp_path, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(FailedHookException):
        bake(**context)
    assert "ERROR:" in capfd.readouterr().err
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]


def test_hooks__defaults_are_valid() -> None:
    rendered = VALID | {k: v for k, v in DEFAULTS.items() if isinstance(v, str) and "{{" not in v}
    assert PRE_GEN.problems(rendered) == []


def _git_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    """The user's global git config, for the hook's git (the system config is left out)."""
    config = tmp_path / "gitconfig"
    config.write_text(text)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def _git(project: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(project), *args], capture_output=True, text=True, check=True
    ).stdout


def test_hooks__the_first_commit_is_the_user_s_when_git_knows_them(
    bake: Bake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _git_config(tmp_path, monkeypatch, "[user]\n\tname = Jane Doe\n\temail = jane@example.org\n")
    project = bake(init_git="yes")
    assert _git(project, "log", "-1", "--format=%an <%ae>").strip() == "Jane Doe <jane@example.org>"


def test_hooks__a_failing_git_keeps_the_bake_and_says_what_git_said(
    bake: Bake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    _git_config(tmp_path, monkeypatch, "[commit]\n\tgpgsign = true\n[gpg]\n\tprogram = false\n")
    project = bake(init_git="yes")
    assert (project / "pyproject.toml").is_file()  # the bake is kept
    err = capfd.readouterr().err
    assert "git commit failed" in err
    assert "commit it yourself" in err


def test_hooks__inside_an_existing_repository_no_repository_is_nested(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from cookiecutter.main import cookiecutter

    outer = tmp_path / "monorepo"
    subprocess.run(["git", "init", "--quiet", str(outer)], check=True)
    baked = Path(
        cookiecutter(str(ROOT), no_input=True, extra_context={"init_git": "yes"}, output_dir=str(outer))
    )
    assert not (baked / ".git").exists()
    assert "skipped 'git init'" in capfd.readouterr().err


def test_hooks__a_bake_ends_with_the_next_commands(bake: Bake, capfd: pytest.CaptureFixture[str]) -> None:
    bake(project_name="Fraud Scoring")
    out = capfd.readouterr().err
    assert "cd fraud-scoring" in out
    assert "nox -s validate-data train && nox" in out
    assert "Connect to GitHub" in out


def test_hooks__a_derived_name_says_where_it_came_from() -> None:
    found = PRE_GEN.problems(VALID | {"project_name": "2024 Churn", "project_slug": "2024-churn"})
    assert "made from project_name '2024 Churn'" in found[0]


def test_hooks__every_locked_distribution_is_a_name_the_package_may_not_take() -> None:
    """The fast half of keeping LOCKED_NAMES whole: each lock's distributions, normalised."""
    missing = set()
    for lock in (ROOT / "templates" / "locks").glob("*.lock"):
        for package in tomllib.loads(lock.read_text())["package"]:
            name = re.sub(r"[-_.]+", "_", package["name"]).lower()
            if name.isidentifier() and name not in PRE_GEN.LOCKED_NAMES:
                missing.add(name)
    assert not missing, f"add to LOCKED_NAMES in hooks/pre_gen_project.py: {' '.join(sorted(missing))}"


def test_hooks__the_choices_that_can_refuse_each_other_are_asked_last() -> None:
    """deploy_target and mlflow_tracking may not go together: nothing is asked after them."""
    prompted = [key for key in DEFAULTS if not key.startswith("_")]
    assert prompted[-2:] == ["deploy_target", "mlflow_tracking"]
    assert "need remote" in DEFAULTS["__prompts__"]["mlflow_tracking"]["__prompt__"]


def test_hooks__a_re_bake_over_a_committed_project_keeps_its_history(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from cookiecutter.main import cookiecutter

    def bake_here() -> Path:
        return Path(
            cookiecutter(
                str(ROOT), no_input=True, overwrite_if_exists=True, output_dir=str(tmp_path),
                extra_context={"init_git": "yes", "description": f"Take {len(list(tmp_path.iterdir()))}"},
            )
        )  # fmt: skip

    project = bake_here()
    project = bake_here()
    assert _git(project, "rev-list", "--count", "HEAD").strip() == "1"
    assert "already a git repository" in capfd.readouterr().err
    assert "Take 1" in (project / "README.md").read_text()  # the re-bake is there, for review
