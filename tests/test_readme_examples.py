"""The README's pytest-plugin examples run as pasted (issue 12): every ```python block of
the section "Catch it in your tests: the pytest plugin" becomes a test file of an inner
pytest session (a subprocess, as a user runs it), once with no ini file at all (the
examples carry their markers) and once under each ```ini block of that section that is
meant for the example's framework (``trio_mode`` for trio, ``asyncio_mode`` for asyncio)."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTION = "### 2. Catch it in your tests: the pytest plugin"


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.index("\n### ", start + len(SECTION))
    return text[start:end]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", _section(), flags=re.S | re.M)


def _framework(code: str) -> str:
    return "trio" if re.search(r"^import trio$", code, re.M) else "asyncio"


#: Which ini line makes a framework's tests run without their marker.
MODE_FOR = {"trio": "trio_mode", "asyncio": "asyncio_mode"}


def _cases() -> list[tuple[int, str | None]]:
    cases: list[tuple[int, str | None]] = []
    inis = _blocks("ini")
    for index, code in enumerate(_blocks("python")):
        cases.append((index, None))
        cases += [(index, ini) for ini in inis if MODE_FOR[_framework(code)] in ini]
    return cases


def _plugin_args() -> list[str]:
    """Load the plugin by module when the installed tcplab predates its entry point."""
    names = {ep.name for ep in importlib.metadata.entry_points(group="pytest11")}
    return [] if "tcplab" in names else ["-p", "tcplab.pytest_plugin"]


def test_the_section_has_an_example_per_framework_and_the_ini_for_each() -> None:
    frameworks = [_framework(code) for code in _blocks("python")]
    assert {"trio", "asyncio"} <= set(frameworks), frameworks
    inis = "\n".join(_blocks("ini"))
    assert "trio_mode = true" in inis and "asyncio_mode = auto" in inis


@pytest.mark.parametrize(("index", "ini"), _cases(),
                         ids=lambda v: "no-ini" if v is None else str(v).strip().splitlines()[-1]
                         if isinstance(v, str) else f"block{v}")
def test_a_readme_example_runs_as_pasted(pytester: pytest.Pytester, index: int, ini: str | None) -> None:
    code = _blocks("python")[index]
    pytester.makepyfile(test_example=code)
    if ini is not None:
        pytester.makeini(ini)
    result = pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider")
    tests = len(re.findall(r"^async def test_|^def test_", code, re.M))
    output = result.stdout.str()
    if "@pytest.mark.tcplab_leaks" in code:  # the leak example: it is meant to be caught,
        result.assert_outcomes(passed=tests, errors=tests)  # as an error at its teardown
        assert "CLOSE_WAIT" in output and "still open after the test's teardown" in output, output
    else:
        result.assert_outcomes(passed=tests)
