"""What a report is written as, and where: the renderers by format, REPORT.md and
report.html beside a results file, and the CI job summary.

The renderers (``tcplab.render``: text, markdown, html, json) each turn the typed results
model (``tcplab.results.Run``) into one format; this module only picks one and writes.
Everything comes from the results file: a report can be rebuilt later
(``tcplab report RESULTS.json``) without running anything.

The CI job summary ($GITHUB_STEP_SUMMARY) is written only when a caller asks for it
(``tcplab run`` does, ``commands/run.py``): writing a report never touches it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from tcplab.render import html, json, markdown, text
from tcplab.results import Run

#: Each format's renderer (``tcplab report --format``).
FORMATS: dict[str, Callable[[Run], str]] = {
    "text": text.render, "markdown": markdown.render, "html": html.render, "json": json.render,
}
#: The files ``tcplab run`` and ``tcplab report`` write next to a results file.
FILES = {"markdown": "REPORT.md", "html": "report.html"}


def render(run: Run, fmt: str) -> str:
    """``run``'s report in ``fmt``, a key of ``FORMATS``."""
    return FORMATS[fmt](run)


def write(run: Run, directory: Path) -> tuple[Path, Path]:
    """Write REPORT.md and report.html into ``directory``; return their paths."""
    md_path, html_path = directory / FILES["markdown"], directory / FILES["html"]
    md_path.write_text(markdown.render(run))
    html_path.write_text(html.render(run))
    return md_path, html_path


def write_step_summary(run: Run, environ: Mapping[str, str] = os.environ) -> Path | None:
    """Append ``run``'s summary and claims tables (Markdown) to the file GitHub Actions names
    in ``$GITHUB_STEP_SUMMARY``; None when it is not set (not a CI job)."""
    name = environ.get("GITHUB_STEP_SUMMARY")
    if not name:
        return None
    path = Path(name)
    with path.open("a") as f:
        f.write(markdown.summary(run))
    return path
