"""Tags select scenarios; opt-in tags keep theirs out of a plain run; ``python:`` and
``program:`` requirements skip with a reason and record the libraries' versions."""

from __future__ import annotations

import pytest

from tcplab import catalog
from tcplab.errors import UsageError
from tcplab.scenario import Scenario, ScenarioResult, run_in_process


def _catalog() -> dict[str, Scenario]:
    made = [Scenario("plain", "t", ()), Scenario("lib", "t", (), tags=("realworld",)),
            Scenario("slowlib", "t", (), tags=("realworld",), slow=True),
            Scenario("other", "t", (), tags=("demo",))]
    return {s.id: s for s in made}


def test_a_plain_run_leaves_out_opt_in_tags_and_slow_ones() -> None:
    chosen = catalog.select(_catalog(), [], include_slow=False)
    assert [s.id for s in chosen] == ["plain", "other"]


def test_a_tag_selects_its_scenarios_and_slow_ones_still_need_asking() -> None:
    assert [s.id for s in catalog.select(_catalog(), [], include_slow=False,
                                         tags=["realworld"])] == ["lib"]
    assert [s.id for s in catalog.select(_catalog(), [], include_slow=True,
                                         tags=["realworld", "demo"])] == ["lib", "slowlib", "other"]
    assert [s.id for s in catalog.select(_catalog(), ["lib"], include_slow=False)] == ["lib"]


def test_all_includes_slow_and_opt_in_scenarios() -> None:
    chosen = catalog.select(_catalog(), [], include_slow=True, include_opt_in=True)
    assert [s.id for s in chosen] == ["plain", "lib", "slowlib", "other"]


def test_an_unknown_tag_is_a_usage_error_naming_the_known_ones() -> None:
    with pytest.raises(UsageError, match="no scenario is tagged nope; tags: demo, realworld"):
        catalog.tagged(_catalog(), ["nope"])


def test_a_missing_python_package_or_program_skips_with_its_reason() -> None:
    absent = Scenario("x", "t", (), requires=("python:no-such-dist-tcplab",))
    assert "needs the Python package no-such-dist-tcplab" in (absent.unmet() or "")
    assert absent.libraries == ("no-such-dist-tcplab",)
    result = run_in_process(absent)
    assert result.status == "skipped"
    assert result.libraries == {"no-such-dist-tcplab": "not installed"}
    missing = Scenario("y", "t", (), requires=("program:no-such-program-tcplab",))
    assert "needs the `no-such-program-tcplab` command" in (missing.unmet() or "")


def test_an_installed_library_version_is_in_the_result_json() -> None:
    present = Scenario("z", "t", (), requires=("python:trio",), record=False)

    @present.body
    async def body(lab: object, verdicts: object) -> None:
        return None

    result = run_in_process(present)
    assert result.status == "passed", result.reason
    import trio
    assert result.libraries == {"trio": trio.__version__}
    assert ScenarioResult.from_json(result.to_json()).libraries == result.libraries
