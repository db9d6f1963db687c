"""A baked project follows the template: replayed answers re-bake it, cruft merges a later commit."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT

# What a template checkout holds besides its tracked files: never part of a template commit.
UNTRACKED = shutil.ignore_patterns(".git", ".nox", ".venv", "__pycache__", ".*_cache", ".hypothesis")
PROJECT_README = "{{cookiecutter.project_slug}}/README.md"
BIN = Path(sys.executable).parent  # cookiecutter and cruft, from the test environment
COOKIECUTTER, CRUFT = str(BIN / "cookiecutter"), str(BIN / "cruft")


def sh(*command: str, cwd: Path) -> str:
    """Run a command; on failure show what it said."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def commit(repo: Path, message: str) -> str:
    """Commit everything in ``repo`` as a fixed author; returns the commit id."""
    sh("git", "add", "--all", cwd=repo)
    sh("git", "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qm", message, cwd=repo)
    return sh("git", "rev-parse", "HEAD", cwd=repo).strip()


@pytest.fixture
def template(tmp_path: Path) -> Path:
    """The template as a git repository of its own at a first commit, as users clone it."""
    repo = tmp_path / "template"
    shutil.copytree(ROOT, repo, ignore=UNTRACKED)
    sh("git", "init", "-q", "--initial-branch=main", cwd=repo)
    commit(repo, "template v1")
    return repo


def test_update__replaying_the_saved_answers_bakes_the_same_project(template: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    sh(COOKIECUTTER, "--no-input", "-o", str(first), str(template), "project_name=Churn (EU)", cwd=tmp_path)
    project = first / "churn-eu"
    answers = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]
    assert answers["project_name"] == "Churn (EU)"

    again = tmp_path / "again"
    sh(COOKIECUTTER, "--replay-file", str(project / ".cookiecutter.json"), "-o", str(again), str(template),
       cwd=tmp_path)  # fmt: skip
    shutil.rmtree(project / ".git")  # init_git=yes: the history differs, the files may not
    shutil.rmtree(again / "churn-eu" / ".git")
    sh("diff", "-r", str(project), str(again / "churn-eu"), cwd=tmp_path)


def test_update__cruft_merges_a_later_template_commit_with_the_project_s_own_edits(
    template: Path, tmp_path: Path
) -> None:
    # As the README says: a version is taken by its commit id (--checkout), a later one existing.
    first = sh("git", "rev-parse", "HEAD", cwd=template).strip()
    source = template / PROJECT_README
    source.write_text(source.read_text() + "\nA line the template added in its second version.\n")
    second = commit(template, "template v2")
    out = tmp_path / "out"
    created = subprocess.run(
        [CRUFT, "create", "--no-input", "--output-dir", str(out), str(template), "--checkout", first],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "cruft: skipped 'git init'" in created.stderr  # default init_git=yes: says why not
    project = out / "customer-churn"
    assert json.loads((project / ".cruft.json").read_text())["commit"] == first
    readme = project / "README.md"
    assert "Customer Churn" in readme.read_text()
    assert "second version" not in readme.read_text()
    sh("git", "init", "-q", "--initial-branch=main", cwd=project)
    commit(project, "bake")

    # The user edits the README's first line; the template's later commit changed its last line.
    readme.write_text(readme.read_text().replace("# Customer Churn", "# Customer Churn (EU team)", 1))
    commit(project, "our own title")

    outdated = subprocess.run([CRUFT, "check"], cwd=project, capture_output=True, text=True, check=False)
    assert outdated.returncode != 0
    diff = sh(CRUFT, "diff", cwd=project)  # the project against its template commit: our edit only
    assert diff.startswith("diff --git")
    assert "+# Customer Churn (EU team)" in diff or "-# Customer Churn (EU team)" in diff
    assert ".git/" not in diff  # no repository inside cruft's renders

    sh(CRUFT, "update", "--skip-apply-ask", "--allow-untracked-files", cwd=project)

    merged = readme.read_text()
    assert "# Customer Churn (EU team)" in merged
    assert "A line the template added in its second version." in merged
    assert json.loads((project / ".cruft.json").read_text())["commit"] == second
    assert not list(project.rglob("*.rej"))


def test_update__every_commit_the_changelog_names_is_in_the_history() -> None:
    """A release is taken by the commit its heading names (the repository keeps no tags)."""
    changelog = (ROOT / "CHANGELOG.md").read_text()
    named = re.findall(
        r"^## \d+\.\d+\.\d+ \(\d{4}-\d{2}-\d{2}, commit ([0-9a-f]{7,40})\)$", changelog, re.MULTILINE
    )
    assert named, "no release heading names its commit"
    if sh("git", "rev-parse", "--is-shallow-repository", cwd=ROOT).strip() == "true":
        pytest.skip("a shallow clone holds no older commits to look the releases up in")
    for commit_id in named:
        sh("git", "cat-file", "-e", f"{commit_id}^{{commit}}", cwd=ROOT)


def test_update__the_changelog_heads_with_the_template_s_version() -> None:
    """A release is a tag named after pyproject's version, described at the top of the changelog."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    newest = re.search(r"^## (\d+\.\d+\.\d+)", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert newest is not None
    assert newest.group(1) == version
