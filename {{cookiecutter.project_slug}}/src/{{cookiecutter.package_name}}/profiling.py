"""whylogs profiles: the one place whylogs is imported.

whylogs 1.6.4 (its last release) still calls ``np.unicode_``, which NumPy 2 removed. Rather
than hold the whole stack on NumPy 1.26 (no wheels for newer Pythons, no fixes), we restore
that single alias before whylogs loads; ``tests/test_profiling.py`` proves logging, merging and
round-tripping work on NumPy 2. Import whylogs through this module only.

Reading a profile also defines a new generic class for every metric component it holds
(``MetricComponent.from_protobuf``), about 190 per small profile: over half of the read's time,
which a first monitoring run spends ten thousand times. :func:`_deserialized_component` makes one
class per kind of component, with the same attributes, so reads and merges give the same
profiles (``tests/test_profiling.py``) in half the time.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

if not hasattr(np, "unicode_"):
    np.unicode_ = np.str_  # type: ignore[attr-defined]
if "WHYLOGS_NO_ANALYTICS" not in os.environ:  # it sends usage statistics home unless told not to
    os.environ["WHYLOGS_NO_ANALYTICS"] = "True"

import whylogs as why
import whylogs_sketching as sketches
from whylogs.core import ColumnProfileView, DatasetProfileView
from whylogs.core.metrics.metric_components import MetricComponent, Registries
from whylogs.core.proto import MetricComponentMessage

from .errors import PipelineError

# each step of reading a profile file is logged at INFO: nothing a stage's reader acts on
logging.getLogger("whylogs.core.utils.protobuf_utils").setLevel(logging.WARNING)

# The value type of each field a component message can hold, as whylogs 1.6 maps them.
COMPONENT_TYPES: dict[str | None, type | None] = {
    "n": int,
    "d": float,
    "frequent_items": sketches.frequent_strings_sketch,
    "hll": sketches.hll_sketch,
    "kll": sketches.kll_doubles_sketch,
}
_COMPONENT_CLASSES: dict[tuple[str | None, int, Registries | None], type[MetricComponent[Any]]] = {}


def _deserialized_component(
    field: str | None, type_id: int, registries: Registries | None
) -> type[MetricComponent[Any]]:
    """The component class whylogs would define for this message, made once per kind.

    Its aggregator, serializer and deserializer depend only on the class, so they are looked up
    once too; a kind whylogs refuses (a serializer without its deserializer) keeps the stock
    constructor, which raises as before.
    """
    key = (field, type_id, registries)
    if (found := _COMPONENT_CLASSES.get(key)) is not None:
        return found

    class DeserializedComponent(MetricComponent[Any]):  # type: ignore[misc]  # whylogs is untyped
        mtype = COMPONENT_TYPES.get(field)

        def __deepcopy__(self, memo: object) -> MetricComponent[Any]:
            return DeserializedComponent.from_protobuf(self.to_protobuf())

    DeserializedComponent.type_id = type_id
    DeserializedComponent.registries = registries
    probe = object.__new__(DeserializedComponent)
    try:
        MetricComponent.__init__(probe, None)
    except ValueError:
        pass
    else:
        parts = (probe._registries, probe._aggregator, probe._serializer, probe._deserializer)

        def looked_up(self: MetricComponent[Any], value: object) -> None:
            self._value = value
            self._registries, self._aggregator, self._serializer, self._deserializer = parts

        setattr(DeserializedComponent, "__init__", looked_up)  # noqa: B010 - a constructor set on the class
    _COMPONENT_CLASSES[key] = DeserializedComponent
    return DeserializedComponent


def _component_from_protobuf(
    cls: type[MetricComponent[Any]], msg: MetricComponentMessage, registries: Registries | None = None
) -> MetricComponent[Any]:
    """``MetricComponent.from_protobuf`` of whylogs 1.6.4, with its class made once per kind."""
    field = msg.WhichOneof("value")
    component = _deserialized_component(field, msg.type_id, registries)(value=None)
    if component._deserializer is None:
        raise ValueError(
            f"Attempt to deserialize a type without a deserializer. Type: {COMPONENT_TYPES.get(field)}. "
            f"ID: {msg.type_id}"
        )
    component._value = component._deserializer(msg=msg)
    return component


if why.__version__.startswith("1.6."):  # the code replaced is 1.6's (its last release line)
    MetricComponent.from_protobuf = classmethod(_component_from_protobuf)  # type: ignore[assignment]

__all__ = [
    "ColumnProfileView",
    "DatasetProfileView",
    "ProfileError",
    "merge",
    "profile",
    "read",
    "row_count",
    "stamp_time",
    "window_time",
    "write",
]


STAMP = "%Y%m%dT%H%M%S"  # as the service names its files (traffic.py)
STAMP_PATTERN = re.compile(r"(\d{8}T\d{6})Z?")


class ProfileError(PipelineError, OSError):
    """A profile cannot be read or written; the message names the path."""


def stamp_time(name: str) -> datetime | None:
    """The UTC window start stamped in a file name (``20260301T110000-…``), if any."""
    match = STAMP_PATTERN.search(name)
    return datetime.strptime(match.group(1), STAMP).replace(tzinfo=UTC) if match else None


CLIENT_PATTERN = re.compile(r"\.client-([a-z0-9._-]+)\.bin$")


VERSION_PATTERN = re.compile(r"\.model-([A-Za-z0-9_-]+)\.client-")
UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def profile_name(stem: str, client: str, model_version: str = "") -> str:
    """A traffic profile's file name: ``<stem>[.model-<version>].client-<client>.bin``.

    See :mod:`.serving.traffic`; the version is the registry's model version that served the rows.
    """
    model = f".model-{UNSAFE.sub('-', model_version)}" if model_version else ""
    return f"{stem}{model}.client-{client}.bin"


def version_of(name: str) -> str | None:
    """The model version a traffic profile's rows were served by (None: not recorded)."""
    match = VERSION_PATTERN.search(name)
    return match.group(1) if match else None


def client_of(name: str) -> str | None:
    """The client a traffic profile holds rows of, from its file name (None: not attributed)."""
    match = CLIENT_PATTERN.search(name)
    return match.group(1) if match else None


def window_time(path: str | Path) -> datetime:
    """When a profile was written: the UTC stamp that starts its name, else its modification time."""
    stamped = stamp_time(Path(path).name)
    return stamped or datetime.fromtimestamp(Path(path).stat().st_mtime, tz=UTC)


def profile(frame: pd.DataFrame) -> DatasetProfileView:
    """Profile a whole frame in one bulk call (about 1 us per row, versus ~5 ms per call)."""
    return why.log(pandas=frame).view()


def write(view: DatasetProfileView, path: str | Path) -> Path:
    """Write a binary profile atomically: readers never see a half-written file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    view.write(str(partial))
    partial.replace(target)
    return target


def read(path: str | Path) -> DatasetProfileView:
    """Read one binary profile, with an error that names the file."""
    try:
        return DatasetProfileView.read(str(path))
    except Exception as error:
        raise ProfileError(f"{path}: not a readable whylogs profile ({error})") from None


def merge(views: Iterable[DatasetProfileView]) -> DatasetProfileView | None:
    """Merge profiles of several windows or workers into one; None when there are none."""
    merged: DatasetProfileView | None = None
    for view in views:
        merged = view if merged is None else merged.merge(view)
    return merged


def row_count(view: DatasetProfileView) -> int:
    """Rows profiled: the largest column count (every logged row counts in each column)."""
    counts = [col.get_metric("counts").n.value for col in view.get_columns().values()]
    return int(max(counts, default=0))


def quantiles(column: ColumnProfileView, points: list[float]) -> list[float] | None:
    """Values at the given quantiles, from the column's KLL sketch; None when it holds no numbers."""
    metric = column.get_metric("distribution")
    if metric is None or metric.kll.value.is_empty():
        return None
    return [float(value) for value in metric.kll.value.get_quantiles(points)]


def histogram(column: ColumnProfileView, edges: np.ndarray) -> np.ndarray:
    """Share of the column's values in each bin between consecutive edges, from its KLL sketch."""
    return np.asarray(column.get_metric("distribution").kll.value.get_pmf(list(edges[1:-1])))


def missing_share(column: ColumnProfileView) -> float:
    """Share of rows with no value (None or NaN)."""
    counts = column.get_metric("counts")
    total = counts.n.value if counts else 0
    return float(counts.null.value / total) if total else 0.0


def value_type(column: ColumnProfileView) -> str:
    """The column's dominant family of values: numeric, string, boolean or object."""
    metric = column.get_metric("types")
    if metric is None:
        return "unknown"
    seen = metric.to_summary_dict()
    families = {
        "numeric": seen.get("integral", 0) + seen.get("fractional", 0),
        "string": seen.get("string", 0),
        "boolean": seen.get("boolean", 0),
        "object": seen.get("object", 0) + seen.get("tensor", 0),
    }
    best = max(families, key=lambda name: families[name])
    return best if families[best] else "empty"


def item_counts(column: object) -> dict[str, float]:
    """Estimated row count of each frequent string in a column profile."""
    metric = column.get_metric("frequent_items")  # type: ignore[attr-defined]
    if metric is None:
        return {}
    return {item.value: float(item.est) for item in metric.to_summary_dict().get("frequent_strings", [])}


def frequencies(column: object) -> dict[str, float]:
    """Relative frequency of each frequent string in a column profile."""
    counts = item_counts(column)
    total = sum(counts.values())
    return {value: count / total for value, count in counts.items()} if total else {}
