"""The CI pages as a reader sees them: rendered about as GitHub renders them, then screenshotted.

A job summary or a pull request body can pass every text assertion and still show a reader
nothing useful: a table broken by a stray pipe, a chart that does not draw, a page gone blank.
So each page is rendered as GitHub-flavoured Markdown (tables, raw HTML such as ``<details>``,
```` ```mermaid ```` blocks drawn by Mermaid itself), shown in headless Chromium with every network
request sent to a dead proxy, and its screenshot kept where a developer can open it:
``reports/screenshots/`` of this repository, or ``$SCREENSHOT_DIR``.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from PIL import Image

BROWSER = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
NO_BROWSER = "no headless Chromium to screenshot the CI pages (apt-get install chromium)"
SCREENSHOT_DIR = Path(
    os.environ.get("SCREENSHOT_DIR") or Path(__file__).resolve().parents[1] / "reports" / "screenshots"
)
WIDTH = 1012  # the Markdown column of a job summary on github.com
HEIGHT = 8000  # taller than any page here; the screenshot is then cut to what the page drew
INK = 230  # a grey level below this is ink: text, rules, chart lines (bars' pale fill is not)
STYLE = """
body { box-sizing: border-box; max-width: 1012px; margin: 0; padding: 16px 24px; color: #1f2328;
  background: #fff; font: 14px/1.5 -apple-system, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif; }
p, blockquote, ul, ol, table, pre, details { margin: 0 0 16px; }
h1, h2, h3, h4 { margin: 24px 0 16px; font-weight: 600; line-height: 1.25; }
h1, h2 { padding-bottom: .3em; border-bottom: 1px solid #d1d9e0; }
h1 { font-size: 2em; } h2 { font-size: 1.5em; } h3 { font-size: 1.25em; }
table { display: block; width: max-content; max-width: 100%; overflow: auto; border-collapse: collapse; }
th, td { padding: 6px 13px; border: 1px solid #d1d9e0; } th { font-weight: 600; }
tr:nth-child(2n) { background: #f6f8fa; }
code { padding: .2em .4em; border-radius: 6px; background: #eff1f3; font-size: 85%;
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; }
pre { padding: 16px; overflow: auto; border-radius: 6px; background: #f6f8fa; }
pre code { padding: 0; background: none; }
pre.mermaid { background: none; text-align: center; }
blockquote { padding: 0 1em; color: #59636e; border-left: .25em solid #d1d9e0; }
summary { cursor: pointer; }
"""
# Every <details> is opened, so that the screenshot shows what a reader finds by clicking, and
# Mermaid draws the charts inside one at their real size (a closed one has none).
# Then every table header cell whose right edge lies beyond its table's (scrolled out of GitHub's
# column, as the eleventh of eleven monitoring columns was) is counted into the body's data.
DRAW = """
document.querySelectorAll("details").forEach((details) => { details.open = true; });
document.body.dataset.hiddenColumns = [...document.querySelectorAll("table")].map((table) => {
  const edge = table.getBoundingClientRect().right + 0.5;
  return [...table.querySelectorAll("th")].filter((cell) => cell.getBoundingClientRect().right > edge).length;
}).reduce((sum, count) => sum + count, 0);
if (window.mermaid) {
  mermaid.initialize({ startOnLoad: false });
  mermaid.run({ querySelector: "pre.mermaid" }).finally(() => {
    document.querySelectorAll("script").forEach((script) => script.remove());  // a short DOM dump
  });
}
"""


@dataclass(frozen=True)
class Screen:
    """One page's screenshot and what the browser made of it."""

    png: Path
    inked: float  # share of the screenshot's pixels that are ink
    blocks: int  # Mermaid blocks on the page
    diagrams: int  # of those, drawn as a diagram (not as Mermaid's error picture)
    hidden_columns: int = 0  # table columns whose header ends beyond GitHub's width (scrolled away)


class Drawn(HTMLParser):
    """Reads the DOM after the scripts ran: the Mermaid blocks and the diagrams drawn in them."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = self.diagrams = self.hidden_columns = 0
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "body":
            self.hidden_columns = int(found.get("data-hidden-columns") or 0)
        if tag == "pre" and "mermaid" in (found.get("class") or "").split():
            self.blocks += 1
            self._inside = True
        elif tag == "svg" and self._inside:
            self.diagrams += found.get("aria-roledescription") != "error"
            self._inside = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._inside = False


def _fence(
    renderer: RendererHTML, tokens: Sequence[Token], index: int, options: OptionsDict, env: EnvType
) -> str:
    """A ```` ```mermaid ```` block becomes text for Mermaid to draw, as on GitHub; others stay code."""
    token = tokens[index]
    if token.info.strip() == "mermaid":
        return f'<pre class="mermaid">{html.escape(token.content)}</pre>\n'
    return renderer.fence(tokens, index, options, env)


def to_html(markdown: str, mermaid_js: Path, title: str) -> str:
    """A self-contained page: the Markdown as GitHub would render it, with Mermaid inline."""
    parser = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    parser.add_render_rule("fence", _fence)
    body = parser.render(markdown)
    mermaid = mermaid_js.read_text() if '<pre class="mermaid">' in body else ""  # 3.5 MB, when needed
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}<script>{mermaid}</script><script>{DRAW}</script></body></html>"
    )


def shoot(page: Path, target: Path) -> Screen:
    """Open a page in headless Chromium, offline; keep its screenshot cut to what it drew."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [
            str(BROWSER),
            "--headless=new",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--hide-scrollbars",
            "--proxy-server=http://127.0.0.1:9",  # offline: anything fetched from a network fails
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}",
            "--virtual-time-budget=10000",  # lets Mermaid finish before the screenshot and the dump
            f"--screenshot={target}",
            "--dump-dom",
            page.as_uri(),
        ]
        done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
    drawn = Drawn()
    drawn.feed(done.stdout)
    return Screen(target, cut_to_ink(target), drawn.blocks, drawn.diagrams, drawn.hidden_columns)


def shoot_markdown(markdown: str, mermaid_js: Path, name: str, folder: Path = SCREENSHOT_DIR) -> Screen:
    """Screenshot a Markdown page (a job summary, a pull request body) as ``<folder>/<name>.png``."""
    with tempfile.TemporaryDirectory(prefix="page-") as scratch:
        page = Path(scratch) / f"{name}.html"
        page.write_text(to_html(markdown, mermaid_js, name))
        return shoot(page, folder / f"{name}.png")


def cut_to_ink(png: Path) -> float:
    """Cut the screenshot below the page's last ink; the share of what remains that is ink.

    A page longer than the window would lose its end unseen, so that fails instead.
    """
    with Image.open(png) as screenshot:
        screenshot.load()
    ink = screenshot.convert("L").point(lambda level: 255 if level < INK else 0)
    box = ink.getbbox()
    if box is None:
        return 0.0
    assert box[3] < HEIGHT, f"{png.name}: the page is taller than the {HEIGHT} px window; raise HEIGHT"
    kept = (0, 0, screenshot.width, min(HEIGHT, box[3] + 16))
    screenshot.crop(kept).save(png)
    return ink.crop(kept).histogram()[255] / (kept[2] * kept[3])
