"""Look at the whole report: render report.html in headless Chromium and measure every part.

A screenshot of the top of the page proves little (issue 10, fault 5: the old test looked at
its first 12 %). Here a copy of the page gets a measuring script (the report itself has no
script), Chromium loads it with every ``<details>`` opened, and ``--dump-dom`` hands back
what the script found: the page's full height, every element that reaches past the page's
right edge or out of its diagram, and per scenario section whether it was laid out with a
diagram (or the "no diagram" note) of non-zero size. In the nox session ``report`` the
whole page, opened, is also screenshotted into report.png for people to look at.

The page rendered is the committed reference run (``results/reference/results.json``: every
scenario, real evidence), so the test is quick and does not depend on the scenarios of the
moment. With ``TCPLAB_REPORT_DIR`` set (the nox session ``report``) it runs the scenarios
first and renders that run, leaving report.png beside it.

Skipped when Chromium is absent (Debian: ``apt-get install chromium``; ``.ci/run`` does it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from tcplab import results
from tcplab.render import html

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "results" / "reference" / "results.json"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars")
WIDTH = 1200

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")

#: Opens every <details>, then measures; the result goes into the DOM that --dump-dom prints.
MEASURE = """
<script>
addEventListener('load', () => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const page = document.documentElement, width = page.clientWidth;
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.className && el.className.baseVal === undefined && el.className ? '.' + el.className : '');
  const overflow = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width && (r.right > width + 0.5 || r.left < -0.5)) {
      overflow.push(name(el) + ' ' + Math.round(r.left) + '..' + Math.round(r.right) +
                    ' ' + (el.textContent || '').trim().slice(0, 60));
    }
  }
  for (const svg of document.querySelectorAll('svg')) {  // text drawn outside its diagram
    const box = svg.getBoundingClientRect();
    for (const t of svg.querySelectorAll('text')) {
      const r = t.getBoundingClientRect();
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5) {
        overflow.push('svg text ' + Math.round(r.left - box.left) + '..' +
                      Math.round(r.right - box.left) + ' of ' + Math.round(box.width) + ': ' +
                      t.textContent.trim().slice(0, 60));
      }
    }
  }
  const sections = {};
  for (const s of document.querySelectorAll('section.scenario')) {
    const drawn = [...s.querySelectorAll('figure svg, p.nodiagram')].map(e => {
      const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; });
    sections[s.id] = {height: s.getBoundingClientRect().height,
                      drawn: drawn.length > 0 && drawn.every(x => x),
                      svgs: s.querySelectorAll('figure svg').length};
  }
  const out = document.createElement('pre');
  out.id = 'measured';
  out.textContent = JSON.stringify({width, scrollWidth: page.scrollWidth,
                                    height: page.scrollHeight, overflow, sections});
  document.body.appendChild(out);
});
</script>
"""

def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium once with a fresh profile (no network: the page is a file)."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="tcplab-chromium-") as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=180, check=True)


def measure(page: Path) -> dict[str, Any]:
    """What the measuring script found on ``page`` (see ``MEASURE``)."""
    probe = page.with_name("measure.html")
    probe.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    dom = chromium("--dump-dom", "--virtual-time-budget=5000", f"--window-size={WIDTH},900",
                   probe.resolve().as_uri()).stdout
    probe.unlink()
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert found, "the measuring script did not run"
    data: dict[str, Any] = json.loads(unescape(found.group(1)))
    return data


def screenshot(page: Path, png: Path, height: int) -> bytes:
    """The whole page, every <details> opened, as one PNG ``WIDTH`` wide."""
    opened = page.with_name("opened.html")
    opened.write_text(page.read_text().replace("<details", "<details open"))
    chromium(f"--screenshot={png}", f"--window-size={WIDTH},{height}", opened.resolve().as_uri())
    opened.unlink()
    return png.read_bytes()


def check_whole_page(results_file: Path, directory: Path, *, keep: bool = False) -> None:
    """Render ``results_file``'s page into ``directory`` and measure it whole; with ``keep``,
    also screenshot it whole (every diagram open) into report.png for people: ~40 s for a
    page 50,000 pixels tall, so only the nox session ``report`` does that."""
    run = results.load(results_file)
    page = directory / "report.html"
    page.write_text(html.render(run))
    found = measure(page)
    assert found["scrollWidth"] <= found["width"], f"the page scrolls sideways: {found}"
    assert found["overflow"] == [], "drawn past the edge:\n" + "\n".join(found["overflow"])
    ids = {s.id for s in run.scenarios}
    sections = found["sections"]
    assert set(sections) == {html.anchor(i) for i in ids}, "a scenario without its section"
    assert [k for k, s in sections.items() if not (s["height"] > 0 and s["drawn"])] == []
    assert sum(s["svgs"] for s in sections.values()) > 0, "no diagram at all"
    if not keep:
        return
    png = directory / "report.png"
    data = screenshot(page, png, min(int(found["height"]) + 40, 60_000))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == WIDTH and height >= found["height"]
    assert len(data) > 50_000, "an almost empty page: the diagrams did not render"


def test_the_measure_sees_what_a_reader_would_trip_on(tmp_path: Path) -> None:
    """The measuring itself: a page that scrolls sideways, a diagram whose text runs past
    its edge and a folded section are all reported (an empty list proves nothing otherwise)."""
    page = tmp_path / "report.html"
    page.write_text('<!DOCTYPE html><html><body><div style="width:1500px">wide</div>'
                    '<section class="scenario" id="a"><details><summary>x</summary><figure>'
                    '<svg width="100" height="40"><text x="90" y="20">far too long</text></svg>'
                    "</figure></details></section></body></html>")
    found = measure(page)
    assert found["scrollWidth"] > found["width"]
    assert any(o.startswith("div ") for o in found["overflow"])
    assert any(o.startswith("svg text") for o in found["overflow"])
    assert found["sections"]["a"]["drawn"] and found["sections"]["a"]["svgs"] == 1


def test_reference_report_renders_whole(tmp_path: Path) -> None:
    """The committed reference run's page, whole: every section drawn, nothing overflowing."""
    check_whole_page(REFERENCE, tmp_path)


@pytest.mark.skipif("TCPLAB_REPORT_DIR" not in os.environ,
                    reason="runs every scenario: set TCPLAB_REPORT_DIR (nox -s report)")
def test_fresh_run_report_renders_whole() -> None:
    """A run made now, its page checked as the reference's; report.png stays beside it."""
    base = Path(os.environ["TCPLAB_REPORT_DIR"])
    done = subprocess.run([sys.executable, "-m", "tcplab", "run", "--results", str(base)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert "report:" in done.stdout, done.stderr
    newest = results.newest(base)
    assert newest is not None
    check_whole_page(newest, newest.parent, keep=True)
