"""quality_scale.yaml stays honest: hassfest does not check it for a custom integration.

Every rule of Home Assistant's Integration Quality Scale is listed; a rule marked `done`
names what shows it, a test or a README section, and that test or section exists; `todo`
and `exempt` say why. A few rules have no test of their own elsewhere and get one here.
"""

from __future__ import annotations

import ast
from functools import cache
import importlib
from pathlib import Path
import re
import tomllib
from typing import Any

import yaml

from custom_components.cardata import PLATFORMS as SET_UP_PLATFORMS

REPO_ROOT = Path(__file__).parent.parent
INTEGRATION = REPO_ROOT / "custom_components" / "cardata"
QUALITY_SCALE = INTEGRATION / "quality_scale.yaml"

# The rules by tier, as script/hassfest/quality_scale.py of Home Assistant core lists them
# (docs: developers.home-assistant.io/docs/core/integration-quality-scale/rules).
RULES_BY_TIER: dict[str, tuple[str, ...]] = {
    "bronze": (
        "action-setup",
        "appropriate-polling",
        "brands",
        "common-modules",
        "config-flow",
        "config-flow-test-coverage",
        "dependency-transparency",
        "docs-actions",
        "docs-conditions",
        "docs-high-level-description",
        "docs-installation-instructions",
        "docs-removal-instructions",
        "docs-triggers",
        "entity-event-setup",
        "entity-unique-id",
        "has-entity-name",
        "runtime-data",
        "test-before-configure",
        "test-before-setup",
        "unique-config-entry",
    ),
    "silver": (
        "action-exceptions",
        "config-entry-unloading",
        "docs-configuration-parameters",
        "docs-installation-parameters",
        "entity-unavailable",
        "integration-owner",
        "log-when-unavailable",
        "parallel-updates",
        "reauthentication-flow",
        "test-coverage",
    ),
    "gold": (
        "devices",
        "diagnostics",
        "discovery",
        "discovery-update-info",
        "docs-data-update",
        "docs-examples",
        "docs-known-limitations",
        "docs-supported-devices",
        "docs-supported-functions",
        "docs-troubleshooting",
        "docs-use-cases",
        "dynamic-devices",
        "entity-category",
        "entity-device-class",
        "entity-disabled-by-default",
        "entity-translations",
        "exception-translations",
        "icon-translations",
        "reconfiguration-flow",
        "repair-issues",
        "stale-devices",
    ),
    "platinum": ("async-dependency", "inject-websession", "strict-typing"),
}
ALL_RULES = {rule for rules in RULES_BY_TIER.values() for rule in rules}

TEST_REFERENCE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")
README_REFERENCE = re.compile(r'README ((?:"[^"]+"(?:, )?)+)')


def load_rules() -> dict[str, dict[str, str]]:
    """The rules of quality_scale.yaml, each as {"status": ..., "comment": ...}."""
    raw: Any = yaml.safe_load(QUALITY_SCALE.read_text(encoding="utf-8"))
    rules: dict[str, dict[str, str]] = {}
    for name, value in raw["rules"].items():
        rules[name] = {"status": value} if isinstance(value, str) else dict(value)
    return rules


@cache
def defined_tests(path: str) -> frozenset[str]:
    """The test functions a test module defines."""
    tree = ast.parse((REPO_ROOT / path).read_text(encoding="utf-8"))
    return frozenset(
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    )


def readme_headings() -> set[str]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    return {line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")}


def broken_references(comment: str) -> list[str]:
    """What a comment names that does not exist; an empty list when all of it does."""
    broken = [
        f"{path}::{name}"
        for path, name in TEST_REFERENCE.findall(comment)
        if not (REPO_ROOT / path).is_file() or name not in defined_tests(path)
    ]
    headings = readme_headings()
    for group in README_REFERENCE.findall(comment):
        broken.extend(
            f"README {heading!r}"
            for heading in re.findall(r'"([^"]+)"', group)
            if heading not in headings
        )
    return broken


def test_every_rule_of_every_tier_is_listed_once() -> None:
    """No rule missing, none unknown, each with a status the scale knows."""
    rules = load_rules()
    assert set(rules) == ALL_RULES
    assert {rule["status"] for rule in rules.values()} <= {"done", "todo", "exempt"}


def test_every_claim_names_what_shows_it_and_that_exists() -> None:
    """A `done` names a test or README section that exists; `todo` and `exempt` say why."""
    problems: list[str] = []
    for name, rule in load_rules().items():
        comment = " ".join(rule.get("comment", "").split())
        if rule["status"] != "done":
            if not comment:
                problems.append(f"{name}: {rule['status']} without a reason")
            continue
        if not TEST_REFERENCE.search(comment) and not README_REFERENCE.search(comment):
            problems.append(f"{name}: names no test and no README section")
        problems.extend(
            f"{name}: {missing} does not exist" for missing in broken_references(comment)
        )
    assert not problems, "\n".join(problems)


def test_a_claim_naming_a_test_that_is_gone_is_caught() -> None:
    """The check above fails for a renamed test or a renamed README section."""
    assert broken_references("tests/test_init.py::test_integration_loads") == []
    assert broken_references("tests/test_init.py::test_that_was_renamed") == [
        "tests/test_init.py::test_that_was_renamed"
    ]
    assert broken_references('README "Removal", "Uninstalling"') == ["README 'Uninstalling'"]


def test_every_platform_declares_parallel_updates() -> None:
    """Entities update from the coordinator (0); a button press spends a request (1)."""
    platforms = [str(platform) for platform in SET_UP_PLATFORMS]
    declared = {
        platform: getattr(
            importlib.import_module(f"custom_components.cardata.{platform}"),
            "PARALLEL_UPDATES",
            None,
        )
        for platform in platforms
    }
    assert declared == {platform: 1 if platform == "button" else 0 for platform in platforms}


def test_mypy_is_strict() -> None:
    """mypy runs in strict mode over the whole integration, its CarData client included."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "mypy"
    ]
    assert config["strict"] is True
    assert config["files"] == ["custom_components"]
