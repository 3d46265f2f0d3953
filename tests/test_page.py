"""The page at `/` of `multigroup serve`, in headless Chromium: each group's prediction as the server gives it.

`make test` installs Debian's chromium where the machine allows it (root or sudo); elsewhere these tests are
skipped with that reason.
"""

import shutil
import subprocess
import urllib.parse
from html.parser import HTMLParser

import pytest
from transformers import pipeline

from helpers import Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (`make test` installs it with apt-get where it can)"
)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
FLAGS.append("--virtual-time-budget=20000")  # wait for the page's requests
TEXT = "the food was great but slow service"


class Rows(HTMLParser):
    """The page's result rows (`data-group`, `data-label`, `data-score`, `data-selected`) and regression values."""

    def __init__(self):
        super().__init__()
        self.rows, self.values, self.state = [], {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.state = attrs.get("data-state")
        if "data-label" in attrs:
            self.rows.append((attrs["data-group"], attrs["data-label"], float(attrs["data-score"]),
                              attrs["data-selected"] == "true"))  # fmt: skip
        if "data-value" in attrs:
            self.values[len(self.values)] = float(attrs["data-value"])


@pytest.fixture(scope="module")
def page(model_dir):
    served = Server("--model", str(model_dir))
    yield f"http://127.0.0.1:{served.port}/?text={urllib.parse.quote(TEXT)}"
    served.stop()


def chromium(*arguments: str) -> str:
    result = subprocess.run([CHROMIUM, *FLAGS, *arguments], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_the_page_shows_every_group_as_the_model_decides(page, model_dir):
    parsed = Rows()
    parsed.feed(chromium("--dump-dom", page))
    assert parsed.state == "done"
    clf = pipeline("multi-group-classification", model=str(model_dir), trust_remote_code=True)
    every, decided = clf(TEXT, top_k=None), clf(TEXT)
    expected = []
    for group, answer in every.items():
        if "value" in answer:
            continue
        chosen = decided[group] if isinstance(decided[group], list) else [decided[group]]
        expected += [(group, item["label"], item["score"], item in chosen) for item in answer]
    without_scores = lambda rows: [(group, label, selected) for group, label, _, selected in rows]  # noqa: E731
    assert without_scores(parsed.rows) == without_scores(expected)
    assert [row[2] for row in parsed.rows] == pytest.approx([row[2] for row in expected], abs=1e-5)
    assert list(parsed.values.values()) == pytest.approx([decided["stars"]["value"]], abs=1e-5)


def test_the_screenshot_is_not_blank(page, tmp_path):
    from PIL import Image

    chromium("--window-size=900,800", f"--screenshot={tmp_path / 'page.png'}", page)
    image = Image.open(tmp_path / "page.png").convert("RGB")
    assert image.size == (900, 800)
    colours = image.getcolors(maxcolors=1 << 20)
    blue = sum(count for count, (r, g, b) in colours if b > 200 and r < 60)  # the chosen labels' bars
    assert len(colours) > 20 and blue > 500
