"""Look at the report: render report.html in headless Chromium and keep the screenshot.

Skipped when Chromium is absent (Debian: ``apt-get install chromium``). With
``TCPLAB_REPORT_DIR`` set (the nox session ``report``), the run and its screenshot stay in
that directory; otherwise they go to a temporary one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")


def screenshot(html: Path, png: Path, *, width: int = 1200, height: int = 6000) -> None:
    """Render ``html`` (a file, no network) into ``png`` with headless Chromium."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="tcplab-chromium-") as profile:
        subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
                        f"--window-size={width},{height}", html.resolve().as_uri()],
                       capture_output=True, timeout=120, check=True)


def test_report_renders(tmp_path: Path) -> None:
    base = Path(os.environ.get("TCPLAB_REPORT_DIR", tmp_path))
    done = subprocess.run([sys.executable, "-m", "tcplab", "run", "--results", str(base)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert "report:" in done.stdout, done.stderr
    directory = max((p for p in base.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    png = directory / "report.png"
    screenshot(directory / "report.html", png)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 6000)
    assert len(data) > 50_000, "an almost empty page: the diagrams did not render"
