"""scripts/check_coverage.py: a module below 95 % line coverage fails the run, by name.

The coverage data files are written with coverage's own API, as a pytest run would leave
them: every statement of the integration executed, then one module left out.
"""

from __future__ import annotations

from pathlib import Path

from coverage import Coverage, CoverageData
import pytest

from scripts.check_coverage import PACKAGE, REPO_ROOT, main, measure

LEFT_OUT = "custom_components/cardata/titles.py"


def write_data(path: Path, lines: dict[str, list[int]]) -> Path:
    data = CoverageData(basename=str(path))
    data.add_lines(lines)
    data.write()
    return path


@pytest.fixture
def statements() -> dict[str, list[int]]:
    """Every statement line of every module, by absolute path."""
    coverage = Coverage(data_file=None, config_file=str(REPO_ROOT / "pyproject.toml"))
    return {str(path): coverage.analysis2(str(path))[1] for path in PACKAGE.rglob("*.py")}


def test_every_module_covered_passes(
    tmp_path: Path, statements: dict[str, list[int]], capsys: pytest.CaptureFixture[str]
) -> None:
    data_file = write_data(tmp_path / ".coverage", statements)

    assert main(["--data-file", str(data_file)]) == 0
    assert "every module at 95 % line coverage or more" in capsys.readouterr().out


def test_a_module_below_the_floor_fails_the_check(
    tmp_path: Path, statements: dict[str, list[int]], capsys: pytest.CaptureFixture[str]
) -> None:
    """The total stays far above 95 %; the one module left out fails the run all the same."""
    left_out = str(REPO_ROOT / LEFT_OUT)
    assert statements[left_out]
    executed = {path: lines for path, lines in statements.items() if path != left_out}
    data_file = write_data(tmp_path / ".coverage", executed)

    assert main(["--data-file", str(data_file)]) == 1
    output = capsys.readouterr().out
    assert output.startswith(f"{LEFT_OUT}: 0.0 % of lines (missing: ")
    assert output.count("\n") == 1


def test_every_module_of_the_package_is_judged(tmp_path: Path) -> None:
    """A module no test imported counts as uncovered, not as absent."""
    judged = {result.module for result in measure(write_data(tmp_path / ".coverage", {}))}
    expected = {str(path.relative_to(REPO_ROOT)) for path in PACKAGE.rglob("*.py")}
    assert judged == expected


def test_missing_data_fails(tmp_path: Path) -> None:
    assert main(["--data-file", str(tmp_path / "nothing")]) == 1
    assert main(["--pytest-log", str(tmp_path / "nothing")]) == 1
    log = tmp_path / "pytest.log"
    log.write_text("== 3 passed in 1.00s ==\n", encoding="utf-8")
    assert main(["--pytest-log", str(log)]) == 1


# pytest-cov's terminal report as scripts/test logs it (term-missing, skip-covered, branches).
REPORT = """\
Name                                         Stmts   Miss Branch BrPart  Cover   Missing
----------------------------------------------------------------------------------------
custom_components/cardata/api/stream.py        471     10    114      5    97%   335, 615-618
custom_components/cardata/titles.py             20      2      6      1    88%   12->14, 30-31
----------------------------------------------------------------------------------------
TOTAL                                         5634    162   1276    116    96%
"""


def test_a_pytest_log_is_judged_per_module(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The log of one Home Assistant version's run: 96 % in total, one module at 90 %."""
    log = tmp_path / "pytest.log"
    log.write_text(REPORT, encoding="utf-8")

    assert main(["--pytest-log", str(log)]) == 1
    assert capsys.readouterr().out == (f"{LEFT_OUT}: 90.0 % of lines (missing: 12->14, 30-31)\n")

    log.write_text(REPORT.replace(" 2      6      1    88%", " 0      6      0   100%"))
    assert main(["--pytest-log", str(log)]) == 0
