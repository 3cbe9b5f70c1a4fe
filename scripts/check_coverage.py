#!/usr/bin/env python3
"""Fail when a module of the integration has less line coverage than the floor (95 %).

pytest-cov's --cov-fail-under judges the total only, so one module can sink while the
others carry the average. Run after pytest with --cov; reads the coverage data file and
judges every .py file under custom_components/cardata, also the ones no test imported.

    scripts/check_coverage.py [--data-file .coverage] [--floor 95]

Prints each module below the floor with its missing lines and exits 1; exits 0 otherwise.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
import sys

from coverage import Coverage
from coverage.exceptions import NoDataError

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = REPO_ROOT / "custom_components" / "cardata"
DEFAULT_FLOOR = 95.0


@dataclass(frozen=True, slots=True)
class ModuleCoverage:
    """Line coverage of one module."""

    module: str
    statements: int
    missing: tuple[int, ...]

    @property
    def percent(self) -> float:
        """Covered statements in percent; a module without statements counts as covered."""
        if not self.statements:
            return 100.0
        return 100.0 * (self.statements - len(self.missing)) / self.statements


def measure(data_file: Path, package: Path = PACKAGE) -> list[ModuleCoverage]:
    """Return the line coverage of every module of `package`, from `data_file`.

    The exclusions of pyproject.toml ([tool.coverage.report]) apply, as in pytest's report.
    """
    coverage = Coverage(data_file=str(data_file), config_file=str(REPO_ROOT / "pyproject.toml"))
    coverage.load()
    results = []
    for path in sorted(package.rglob("*.py")):
        _, statements, _, missing, _ = coverage.analysis2(str(path))
        results.append(
            ModuleCoverage(str(path.relative_to(REPO_ROOT)), len(statements), tuple(missing))
        )
    return results


def below_floor(results: list[ModuleCoverage], floor: float) -> list[ModuleCoverage]:
    """Return the modules whose line coverage is below `floor` percent."""
    return [result for result in results if result.percent < floor]


def main(argv: list[str] | None = None) -> int:
    """Check the data file; print what is below the floor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-file", type=Path, default=REPO_ROOT / ".coverage")
    parser.add_argument("--floor", type=float, default=DEFAULT_FLOOR)
    args = parser.parse_args(argv)
    if not args.data_file.is_file():
        print(f"check_coverage: no coverage data at {args.data_file}", file=sys.stderr)
        return 1
    try:
        results = measure(args.data_file)
    except NoDataError as err:
        print(f"check_coverage: {err}", file=sys.stderr)
        return 1
    failing = below_floor(results, args.floor)
    for result in failing:
        lines = ", ".join(map(str, result.missing))
        print(f"{result.module}: {result.percent:.1f} % of lines (missing: {lines})")
    if failing:
        print(
            f"check_coverage: {len(failing)} module(s) below {args.floor:g} % line coverage",
            file=sys.stderr,
        )
        return 1
    print(f"check_coverage: every module at {args.floor:g} % line coverage or more")
    return 0


if __name__ == "__main__":
    sys.exit(main())
