"""Optionally start the generated project's git history (the GitOps workflows need one)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

# Rendered by cookiecutter; a raw string so the JSON escapes survive.
CONTEXT = json.loads(r"""{{ cookiecutter | tojson }}""")


def git(*args: str) -> None:
    """Run git quietly; identity is set per command so a bare machine works too."""
    identity = ["-c", f"user.name={CONTEXT['author_name']}", "-c", f"user.email={CONTEXT['author_email']}"]
    subprocess.run(["git", *identity, *args], check=True, capture_output=True)


if __name__ == "__main__":
    if CONTEXT["init_git"] == "yes" and shutil.which("git"):
        git("init", "--quiet", "--initial-branch=main")
        git("add", "--all")
        git("commit", "--quiet", "--no-verify", "--message", "Initial commit from the gitops-mlops template")
    elif CONTEXT["init_git"] == "yes":
        print("git not found: skipped 'git init'; run it yourself before pushing.", file=sys.stderr)
