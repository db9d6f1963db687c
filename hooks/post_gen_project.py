"""Start the generated project's git history (the GitOps workflows need one), then say what's next.

The git step never costs the user the bake: a failing git (a commit signer that refuses, no
identity) is reported with git's own words and the project stays. It commits as the user when
git knows who they are, and as the author given at the prompt only on a bare machine. Inside an
existing repository, or a folder that already is one (a re-bake), it does nothing: nesting one
repository in another is rarely what anyone wants, and a re-bake is for the user to review.
Under cruft it does nothing either: cruft renders the template again, in scratch folders, for every
``cruft diff`` and ``cruft update``, and a repository made there would be part of the diff.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

# Rendered by cookiecutter; a raw string so the JSON escapes survive.
CONTEXT = json.loads(r"""{{ cookiecutter | tojson }}""")
MESSAGE = "Initial commit from the gitops-mlops template"


def git(*args: str) -> subprocess.CompletedProcess[str]:
    """Run git quietly in the project folder; the caller reads its exit code."""
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False)


def identity() -> list[str]:
    """``-c user.*`` for what git does not know yet: the user's own identity wins."""
    options = []
    for key, fallback in (("user.name", CONTEXT["author_name"]), ("user.email", CONTEXT["author_email"])):
        if not git("config", "--get", key).stdout.strip():
            options += ["-c", f"{key}={fallback}"]
    return options


def start_history() -> str:
    """``git init`` and the first commit; what happened, in one line."""
    if shutil.which("git") is None:
        return "git not found: skipped 'git init'; run it yourself before pushing."
    if "_commit" in CONTEXT:  # cruft renders the template again for every diff and update
        return (
            "cruft: skipped 'git init', which would land inside cruft's own renders and break "
            "'cruft diff' and 'cruft update'; run 'git init' and make the first commit yourself."
        )
    enclosing = subprocess.run(
        ["git", "-C", str(Path.cwd().parent), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=False,
    )
    if enclosing.returncode == 0:
        return f"inside the git repository {enclosing.stdout.strip()}: skipped 'git init'."
    if Path(".git").exists():  # a bake over an existing project (--overwrite-if-exists)
        return (
            "already a git repository: skipped 'git init'; review the re-bake with 'git diff' and commit it."
        )
    steps = {
        "init": ["init", "--quiet", "--initial-branch=main"],
        "add": ["add", "--all"],
        "commit": [*identity(), "commit", "--quiet", "--no-verify", "--message", MESSAGE],
    }
    for name, args in steps.items():
        done = git(*args)
        if done.returncode:
            said = (done.stderr or done.stdout).strip().splitlines()
            reason = said[-1] if said else f"exit {done.returncode}"
            return f"git {name} failed ({reason}); the project is kept: commit it yourself."
    return "git: initial commit on main."


# What only a Kubernetes target uses: the manifests, the GitOps objects that sync them, and
# their tests. (The code that edits and checks them stays: it does nothing without manifests.)
KUBERNETES_ONLY = ("deploy/kubernetes", "deploy/gitops", "tests/deployment/test_kubernetes.py")


def drop_other_target() -> list[str]:
    """A host-only bake carries no Kubernetes files: what the project has is what it runs."""
    if CONTEXT["deploy_target"] != "local":
        return []
    dropped = []
    for name in KUBERNETES_ONLY:
        path = Path(name)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        dropped.append(str(path))
    return dropped


def next_steps() -> str:
    """The three commands after a bake, and where the GitHub side is described."""
    slug = CONTEXT["project_slug"]
    return (
        f"\nBaked {slug}. Next:\n"
        f"  cd {slug}\n"
        "  python3 -m pip install uv nox      # once: the locked environment and the task runner\n"
        "  nox -s validate-data train && nox  # data gate and training, then lint, types and tests\n"
        "Then README.md, 'Connect to GitHub' (`nox -s doctor` checks what it can from here).\n"
    )


if __name__ == "__main__":
    drop_other_target()  # before the first commit, which should hold only this target's files
    if CONTEXT["init_git"] == "yes":
        print(start_history(), file=sys.stderr)
    print(next_steps(), file=sys.stderr)  # stdout stays clean for `cruft diff > patch`
