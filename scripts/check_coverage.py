#!/usr/bin/env python3
"""Fail when a module of the integration has less line coverage than the floor (95 %).

pytest-cov's --cov-fail-under judges the total only, so one module can sink while the
others carry the average. Run after pytest with --cov; judges every .py file under
custom_components/cardata, also the ones no test imported, from either

- the coverage data file (--data-file, default .coverage), or
- the log of a pytest run with --cov-report=term-missing (--pytest-log): scripts/test keeps
  one per Home Assistant version, while both versions would write the same data file.

    scripts/check_coverage.py [--data-file .coverage | --pytest-log LOG] [--floor 95]

Prints each module below the floor with its missing lines and exits 1; exits 0 otherwise.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
import re
import sys

from coverage import Coverage
from coverage.exceptions import NoDataError

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = REPO_ROOT / "custom_components" / "cardata"
DEFAULT_FLOOR = 95.0
# A row of pytest-cov's terminal report: name, statements, missed, [branches, partial,]
# percent, missing lines.
_REPORT_ROW = re.compile(
    r"^(?P<module>custom_components/cardata/\S+\.py)\s+(?P<statements>\d+)\s+(?P<missed>\d+)"
    r"(?:\s+\d+\s+\d+)?\s+\d+%\s*(?P<missing>.*)$"
)


@dataclass(frozen=True, slots=True)
class ModuleCoverage:
    """Line coverage of one module."""

    module: str
    statements: int
    missed: int
    # The missing lines as coverage prints them ("12, 15-18").
    missing: str

    @property
    def percent(self) -> float:
        """Covered statements in percent; a module without statements counts as covered."""
        if not self.statements:
            return 100.0
        return 100.0 * (self.statements - self.missed) / self.statements


def measure(data_file: Path, package: Path = PACKAGE) -> list[ModuleCoverage]:
    """Return the line coverage of every module of `package`, from `data_file`.

    The exclusions of pyproject.toml ([tool.coverage.report]) apply, as in pytest's report.
    """
    coverage = Coverage(data_file=str(data_file), config_file=str(REPO_ROOT / "pyproject.toml"))
    coverage.load()
    results = []
    for path in sorted(package.rglob("*.py")):
        _, statements, _, missing, missing_text = coverage.analysis2(str(path))
        results.append(
            ModuleCoverage(
                str(path.relative_to(REPO_ROOT)), len(statements), len(missing), missing_text
            )
        )
    return results


def measure_from_report(log: str) -> list[ModuleCoverage]:
    """Return the line coverage of the modules a pytest-cov terminal report lists.

    A report with skip_covered leaves out the modules at 100 %; they pass anyway.
    """
    return [
        ModuleCoverage(
            row["module"], int(row["statements"]), int(row["missed"]), row["missing"].strip()
        )
        for line in log.splitlines()
        if (row := _REPORT_ROW.match(line)) is not None
    ]


def below_floor(results: list[ModuleCoverage], floor: float) -> list[ModuleCoverage]:
    """Return the modules whose line coverage is below `floor` percent."""
    return [result for result in results if result.percent < floor]


def main(argv: list[str] | None = None) -> int:
    """Check the data file; print what is below the floor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data-file", type=Path, default=REPO_ROOT / ".coverage")
    source.add_argument("--pytest-log", type=Path)
    parser.add_argument("--floor", type=float, default=DEFAULT_FLOOR)
    args = parser.parse_args(argv)
    if args.pytest_log is not None:
        try:
            report = args.pytest_log.read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            print(f"check_coverage: cannot read {args.pytest_log}: {err}", file=sys.stderr)
            return 1
        results = measure_from_report(report)
        if not results and "TOTAL" not in report:
            print(f"check_coverage: no coverage report in {args.pytest_log}", file=sys.stderr)
            return 1
        return _verdict(results, args.floor)
    if not args.data_file.is_file():
        print(f"check_coverage: no coverage data at {args.data_file}", file=sys.stderr)
        return 1
    try:
        results = measure(args.data_file)
    except NoDataError as err:
        print(f"check_coverage: {err}", file=sys.stderr)
        return 1
    return _verdict(results, args.floor)


def _verdict(results: list[ModuleCoverage], floor: float) -> int:
    """Print the modules below `floor`; return the exit status."""
    failing = below_floor(results, floor)
    for result in failing:
        print(f"{result.module}: {result.percent:.1f} % of lines (missing: {result.missing})")
    if failing:
        print(
            f"check_coverage: {len(failing)} module(s) below {floor:g} % line coverage",
            file=sys.stderr,
        )
        return 1
    print(f"check_coverage: every module at {floor:g} % line coverage or more")
    return 0


if __name__ == "__main__":
    sys.exit(main())
