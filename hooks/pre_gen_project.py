"""Reject template inputs that would generate a broken project.

Each validator takes the rendered cookiecutter context and returns a list of
problems; every problem says what is wrong and how to fix it. The hook prints
all of them at once and exits non-zero, so nothing is generated.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from collections.abc import Callable, Mapping

# Rendered by cookiecutter; a raw string so the JSON escapes survive.
CONTEXT = r"""{{ cookiecutter | tojson }}"""

Context = Mapping[str, str]
SLUG = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
GITHUB_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
RESERVED_PACKAGES = {
    "test",
    "tests",
    "src",
    "conf",
    "data",
    "deploy",
    "mlflow",
    "bentoml",
    "sklearn",
    "hydra",
    "whylogs",
}


def check_slug(ctx: Context) -> list[str]:
    """The slug names the repository, the distribution and the MLflow model."""
    slug = ctx["project_slug"]
    if SLUG.match(slug) and len(slug) <= 50:
        return []
    return [
        f"project_slug {slug!r} is not valid: use 1-50 lower-case letters, digits and single "
        "hyphens, starting with a letter (for example 'customer-churn')."
    ]


def check_package_name(ctx: Context) -> list[str]:
    """The package is imported by name, so it must be a plain, unshadowed identifier."""
    name = ctx["package_name"]
    if not name.isidentifier() or not name.isascii() or name != name.lower():
        return [
            f"package_name {name!r} is not a lower-case ASCII Python identifier: "
            "use letters, digits and underscores (for example 'customer_churn')."
        ]
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return [f"package_name {name!r} is a Python keyword: pick another name (for example '{name}_model')."]
    if name in RESERVED_PACKAGES or name in sys.stdlib_module_names:
        return [
            f"package_name {name!r} would shadow an existing module: "
            f"pick another name (for example '{name}_model')."
        ]
    return []


def check_email(ctx: Context) -> list[str]:
    """The e-mail lands in pyproject.toml metadata, which build tools validate."""
    email = ctx["author_email"]
    return (
        []
        if EMAIL.match(email)
        else [f"author_email {email!r} is not an e-mail address: use the form name@example.com."]
    )


def check_github_owner(ctx: Context) -> list[str]:
    """The owner becomes part of the image name ghcr.io/<owner>/<slug>."""
    owner = ctx["github_owner"]
    if GITHUB_OWNER.match(owner):
        return []
    return [
        f"github_owner {owner!r} is not a GitHub user or organisation name: "
        "use letters, digits and single hyphens."
    ]


def check_one_line(ctx: Context) -> list[str]:
    """Names and descriptions land in one-line fields (TOML strings, YAML scalars, headings)."""
    fields = ("project_name", "description", "author_name")
    return [
        f"{f} must be a single line: remove the line break."
        for f in fields
        if "\n" in ctx[f] or "\r" in ctx[f]
    ]


def check_deploy_needs_shared_registry(ctx: Context) -> list[str]:
    """Kubernetes promotions run on CI runners, which need a registry that outlives the runner."""
    if unsupported_combination(ctx):
        return [
            f"deploy_target={ctx['deploy_target']!r} needs mlflow_tracking='remote': cluster deployments are "
            "promoted from CI runners, and a local sqlite registry dies with each runner. Choose "
            "mlflow_tracking=remote, or deploy_target=local."
        ]
    return []


def unsupported_combination(ctx: Context) -> bool:
    """The one rule that removes choice combinations (shared with the template tests)."""
    return ctx["deploy_target"] in {"kubernetes", "both"} and ctx["mlflow_tracking"] == "local"


VALIDATORS: tuple[Callable[[Context], list[str]], ...] = (
    check_slug,
    check_package_name,
    check_email,
    check_github_owner,
    check_one_line,
    check_deploy_needs_shared_registry,
)


def problems(ctx: Context) -> list[str]:
    """Run every validator so the user sees all problems in one go."""
    return [problem for validate in VALIDATORS for problem in validate(ctx)]


def main() -> int:
    """Print every problem and fail, or succeed silently."""
    found = problems(json.loads(CONTEXT))
    for problem in found:
        print(f"ERROR: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
