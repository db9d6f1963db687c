"""Optionally start the generated project's git history (the GitOps workflows need one)."""

from __future__ import annotations

import shutil
import subprocess
import sys

INIT_GIT = {{ cookiecutter.init_git | tojson }} == "yes"
AUTHOR = {{ cookiecutter.author_name | tojson }}
EMAIL = {{ cookiecutter.author_email | tojson }}


def git(*args: str) -> None:
    """Run git quietly; identity is set per command so a bare machine works too."""
    identity = ["-c", f"user.name={AUTHOR}", "-c", f"user.email={EMAIL}"]
    subprocess.run(["git", *identity, *args], check=True, capture_output=True)


if __name__ == "__main__":
    if INIT_GIT and shutil.which("git"):
        git("init", "--quiet", "--initial-branch=main")
        git("add", "--all")
        git("commit", "--quiet", "--no-verify", "--message", "Initial commit from the gitops-mlops template")
    elif INIT_GIT:
        print("git not found: skipped 'git init'; run it yourself before pushing.", file=sys.stderr)
