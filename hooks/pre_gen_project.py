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
# The project's own folders and the tools that run it: a package named like them would be
# imported in their place.
RESERVED_PACKAGES = frozenset(
    {"test", "tests", "src", "conf", "data", "deploy", "nox", "uv", "pip", "setuptools"}
)
# Every distribution in the generated uv.lock (normalised) and every top-level module it installs:
# a package of the same name shadows the dependency, or collides with it in the lock. Kept
# complete by the template tests (the lock's names in the fast tier, an installed bake's modules
# in the slow one), which print what to add when a dependency changes.
LOCKED_NAMES = frozenset(
    """
    a2wsgi aiohappyeyeballs aiohttp aiohttp_asgi_connector aiohttp_cors aiosignal aiosqlite
    alembic annotated_doc annotated_types antlr4 antlr4_python3_runtime anyio asgiref
    ast_serialize attr attrs autopage backoff bentoml bentoml_cli bidict blinker boto3 botocore
    brotli cachetools cattr cattrs certifi cffi cfgv charset_normalizer circus click
    click_option_group cliff cloudpickle cmaes cmd2 colorama colorful colorlog configargparse
    contourpy cryptography cycler databricks databricks_sdk dateutil distlib docker dotenv
    engineio example execnet fastapi filelock flask flask_cors flask_login fonttools frozenlist
    fsspec gevent geventhttpclient git gitdb gitpython google google_api_core google_auth
    googleapis_common_protos graphene graphql graphql_core graphql_relay greenlet grpcio
    gunicorn h11 harfile httpcore httpx httpx_ws huey hydra hydra_core hydra_optuna_sweeper
    hydra_ray_launcher hypothesis hypothesis_graphql identify idna importlib_metadata
    importlib_resources iniconfig itsdangerous jinja2 jmespath joblib jsonschema jsonschema_rs
    jsonschema_specifications kantoku kiwisolver kubernetes_validate librt locust mako
    markdown_it markdown_it_py markupsafe matplotlib mdurl mlflow mlflow_skinny mlflow_tracing
    mpl_toolkits msgpack multidict multipart mypy mypy_extensions mypyc narwhals nodeenv numpy
    nvidia_ml_py omegaconf opencensus opencensus_context opentelemetry opentelemetry_api
    opentelemetry_exporter_prometheus opentelemetry_instrumentation
    opentelemetry_instrumentation_aiohttp_client opentelemetry_instrumentation_asgi
    opentelemetry_proto opentelemetry_sdk opentelemetry_semantic_conventions
    opentelemetry_util_http optuna packaging packaging_legacy_version pandas pandas_stubs
    pathspec pil pillow pip_requirements_parser platformdirs pluggy pre_commit pre_commit_hooks
    prettytable prometheus_client prompt_toolkit propcache proto_plus protobuf psutil py py_spy
    pyarrow pyasn1 pyasn1_modules pycparser pydantic pydantic_core pydevd_plugins pygments pylab
    pynvml pyparsing pyperclip pyrate_limiter pytest pytest_locust pytest_xdist python_dateutil
    python_discovery python_dotenv python_engineio python_json_logger python_multipart
    python_socketio pythonjsonlogger pywin32 pyyaml pyzmq ray referencing requests rich
    rich_argparse rich_toolkit rpds rpds_py ruamel ruamel_yaml ruff s3transfer schema
    schemathesis scikit_learn scipy simple_di simple_websocket six sklearn skops smart_open
    smmap socketio sortedcontainers sqlalchemy sqlparse starlette stevedore supervisor
    threadpoolctl tomli_w tornado tqdm types_pyyaml typing_extensions typing_inspection tzdata
    urllib3 uvicorn virtualenv waitress watchfiles wcwidth websocket websocket_client werkzeug
    whylabs_client whylogs whylogs_sketching wrapt wsproto xdist yaml yarl zipp zizmor zmq zope
    zope_event zope_interface
    """.split()  # noqa: SIM905 - a word list reads better than 230 quoted strings
)


def check_slug(ctx: Context) -> list[str]:
    """The slug names the repository, the distribution and the MLflow model."""
    slug = ctx["project_slug"]
    derived = f"(made from project_name {ctx['project_name']!r} unless you set it)"
    if not SLUG.match(slug) or len(slug) > 50:
        return [
            f"project_slug {slug!r} {derived} is not valid: use 1-50 lower-case letters, digits and "
            "single hyphens, starting with a letter. Start the project name with a letter, or set "
            "project_slug yourself (for example 'customer-churn')."
        ]
    if slug.replace("-", "_") in LOCKED_NAMES:
        return [
            f"project_slug {slug!r} {derived} is the name of one of the project's own dependencies, "
            f"which the lock cannot hold twice: pick another name (for example '{slug}-model')."
        ]
    return []


def check_package_name(ctx: Context) -> list[str]:
    """The package is imported by name, so it must be a plain, unshadowed identifier."""
    name = ctx["package_name"]
    derived = f"(made from project_slug {ctx['project_slug']!r} unless you set it)"
    if not name.isidentifier() or not name.isascii() or name != name.lower():
        return [
            f"package_name {name!r} {derived} is not a lower-case ASCII Python identifier: "
            "use letters, digits and underscores (for example 'customer_churn')."
        ]
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return [f"package_name {name!r} is a Python keyword: pick another name (for example '{name}_model')."]
    shadowed = (
        "the standard library's module"
        if name in sys.stdlib_module_names
        else "a dependency's module"
        if name in LOCKED_NAMES
        else "the project's own folder or tool"
        if name in RESERVED_PACKAGES
        else None
    )
    if shadowed:
        return [
            f"package_name {name!r} {derived} would shadow {shadowed} of that name: "
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
