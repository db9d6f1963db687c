"""Monitoring reports: every output written, and the HTML page opens with no network.

The page's screenshots are kept in ``reports/screenshots/`` (git-ignored), to look at.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib import image

from {{ cookiecutter.package_name }} import config
from {{ cookiecutter.package_name }}.monitoring import dashboards, health, monitor
from monitored import Fitted, fit, replayed

CAPTURED = Path(__file__).parent / "data" / "bentoml_metrics.txt"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SCREENSHOTS = config.report_root(None) / "screenshots"
BROWSER = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


class Assets(HTMLParser):
    """Every URL the page would load: src, href, and url(...) in inline style."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [value or "" for name, value in attrs if name in {"src", "href", "srcset", "data"}]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory, sample: pd.DataFrame) -> Fitted:
    return fit(tmp_path_factory.mktemp("reference"), sample)


@pytest.fixture(scope="module", params=["none", "covariate"])
def written(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fitted: Fitted
) -> tuple:
    folder = tmp_path_factory.mktemp(request.param)
    comparison = replayed(folder, fitted, request.param)
    comparison.result.health = health.summarize({str(CAPTURED): CAPTURED.read_text()}, 0.5, 50.0)
    return comparison, dashboards.write(comparison, folder / "reports")


def test_write__html_page_has_no_network_assets(written: tuple) -> None:
    _, paths = written
    parser = Assets()
    parser.feed(paths.html.read_text())
    assert "script" not in parser.tags
    assert "link" not in parser.tags
    assert parser.urls
    assert all(url.startswith("data:image/png;base64,") for url in parser.urls)
    assert len(parser.urls) == len(paths.charts)
    assert "http://" not in paths.html.read_text()
    assert "https://" not in paths.html.read_text()


def screenshot(page: Path, target: Path) -> np.ndarray:
    """Render a page in headless Chromium with every network request sent to a dead proxy."""
    command = [
        str(BROWSER),
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--hide-scrollbars",
        "--proxy-server=http://127.0.0.1:9",  # offline: anything fetched from a network fails
        f"--user-data-dir={target.parent / 'chromium-profile'}",
        "--window-size=1200,4000",
        f"--screenshot={target}",
        page.as_uri(),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return np.asarray(image.imread(target))


def inked_share(pixels: np.ndarray) -> float:
    """Share of pixels that are not (near) white: text, table rules, chart axes, bars and lines."""
    return float((pixels[..., :3].min(axis=2) < 0.9).mean())


@pytest.mark.skipif(
    BROWSER is None, reason="no headless Chromium to render the page (apt-get install chromium)"
)
def test_write__html_page_renders_its_charts_offline(written: tuple, tmp_path: Path) -> None:
    comparison, paths = written
    bare = tmp_path / "without-images.html"
    bare.write_text(re.sub(r"<img [^>]*>", "", paths.html.read_text()))
    with_charts = inked_share(screenshot(paths.html, tmp_path / "page.png"))
    without = inked_share(screenshot(bare, tmp_path / "bare.png"))
    verdict = "drift" if comparison.result.drift_detected else "no-drift"
    kept = SCREENSHOTS / f"monitoring-report-{verdict}.png"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "page.png", kept)  # kept before the verdict: a broken page is the one to see
    assert with_charts > 1.3 * without  # charts drew (1.8-3x measured; broken images give 1.0x), offline


def test_write__json_markdown_and_charts_agree(written: tuple) -> None:
    comparison, paths = written
    result: monitor.MonitorResult = comparison.result
    saved = json.loads(paths.json.read_text())
    assert saved["drift_detected"] is result.drift_detected
    assert saved["drifted_columns"] == result.drifted_columns
    assert saved["health"]["requests"] == 32
    verdict = "DRIFT DETECTED" if result.drift_detected else "no drift"
    assert verdict in paths.markdown.read_text()
    row = r"\| tenure_months \| [^|]+ \| ks \| [\d.]+ / [\d.]+ \| p[<=][\d.]+ \|"
    assert re.search(row, paths.markdown.read_text())
    assert "vs previous" in paths.markdown.read_text()
    assert {column["distance"] for column in saved["columns"]} <= {"ks", "hellinger"}
    names = {path.stem for path in paths.charts}
    assert {"overview", "prediction-timeline", "distribution-prediction"} <= names
    assert {f"distribution-{column}" for column in result.drifted_columns} <= names
    assert all(path.read_bytes().startswith(PNG_MAGIC) for path in paths.charts)


def test_markdown__columns_fit_github_s_width_with_status_second_one_number_format_and_a_chart(
    written: tuple,
) -> None:
    comparison, paths = written
    page = paths.markdown.read_text()
    header = next(line for line in page.splitlines() if line.startswith("| column |"))
    assert header.strip("| ").split(" | ")[:2] == ["column", "status"]
    assert header.count(" | ") + 1 <= 7  # eleven pushed the status off GitHub's 1,012 px
    assert not re.search(r"\d[eE][+-]?\d", page)  # no 2.1e-231, no p=0.0e+00
    pairs = re.findall(r"\| ([\d.]+) / ([\d.]+) \| p[<=]", page)
    assert len(pairs) == len(comparison.result.columns)
    assert all(score != threshold for score, threshold in pairs)  # never "0.070 > 0.070" from rounding
    near = max(c.statistic / c.threshold for c in comparison.result.columns if c.role != "label")
    assert ("```mermaid" in page) == (near >= 0.5)
    assert f"{comparison.result.rows:,} rows" in page


def test_publish__writes_github_outputs_and_leaves_the_job_summary_to_summary(
    written: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    comparison, paths = written
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary"))
    dashboards.publish(comparison.result, paths)
    outputs = dict(line.split("=", 1) for line in (tmp_path / "output").read_text().splitlines())
    assert outputs["drift"] == str(comparison.result.drift_detected).lower()
    assert outputs["report"] == str(paths.html)
    assert not (tmp_path / "summary").exists()  # `nox -s summary` renders monitor.md, once
