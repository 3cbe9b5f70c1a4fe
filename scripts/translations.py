"""Keep the translation files in step with strings.json.

Home Assistant loads a custom integration's texts from translations/<lang>.json only, so
translations/en.json is generated from strings.json (the source the team edits). German is
written by hand; this script lists keys that German lacks or has in excess.

    python scripts/translations.py          write en.json, report German gaps (exit 1 if any)
    python scripts/translations.py --check  only check (used by the tests)
"""

from __future__ import annotations

import json
from pathlib import Path
import sys

INTEGRATION = Path(__file__).parents[1] / "custom_components" / "cardata"
STRINGS = INTEGRATION / "strings.json"
TRANSLATIONS = INTEGRATION / "translations"


def flatten(tree: object, prefix: str = "") -> dict[str, str]:
    """Map dotted key paths to their texts."""
    if isinstance(tree, dict):
        flat: dict[str, str] = {}
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): str(tree)}


def dump(tree: object) -> str:
    """Serialise the way the repository stores JSON."""
    return json.dumps(tree, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    """Write en.json and report what German is missing."""
    check_only = "--check" in sys.argv
    strings = json.loads(STRINGS.read_text(encoding="utf-8"))
    english = TRANSLATIONS / "en.json"
    problems: list[str] = []
    if check_only:
        if not english.exists() or json.loads(english.read_text(encoding="utf-8")) != strings:
            problems.append("translations/en.json differs from strings.json")
    else:
        TRANSLATIONS.mkdir(exist_ok=True)
        english.write_text(dump(strings), encoding="utf-8")
    german_file = TRANSLATIONS / "de.json"
    german = json.loads(german_file.read_text(encoding="utf-8")) if german_file.exists() else {}
    expected, present = set(flatten(strings)), set(flatten(german))
    problems += [f"de.json lacks {key}" for key in sorted(expected - present)]
    problems += [f"de.json has extra {key}" for key in sorted(present - expected)]
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
