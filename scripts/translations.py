"""Keep the translation files in step with strings.json.

Home Assistant loads a custom integration's texts from translations/<lang>.json only, so
translations/en.json is generated from strings.json (the source the team edits). Every other
language in LANGUAGES is written by hand; this script checks that each has exactly the keys of
strings.json, no empty text, and the same placeholders ({account}, {error}, ...) as English.

    python scripts/translations.py           write en.json, check every language (exit 1 on gaps)
    python scripts/translations.py --check   only check, write nothing (run by the tests)

Adding a language: append its code to LANGUAGES, then translate it with the two commands below
(`--missing xx` on a language without a file prints every key).

Translating keys added to strings.json later, one language at a time:

    python scripts/translations.py --missing fr > /tmp/fr.json
        prints the keys fr.json lacks, with their English text, as JSON shaped like
        strings.json. Replace the English texts in that file by French ones.
    python scripts/translations.py --merge fr /tmp/fr.json
        merges the translated keys into translations/fr.json, written in the order of
        strings.json. The file may also be flat ({"config.step.user.title": "..."}). Nothing is
        written if it names a key strings.json lacks or changes a placeholder. Keys strings.json
        no longer has are dropped from fr.json, and said so. Exit 1 while gaps remain.

Changed English wording is not detected (only keys and placeholders are): after rewording a
text in strings.json, delete its key from every language file, then use --missing and --merge.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import re
import sys

INTEGRATION = Path(__file__).parents[1] / "custom_components" / "cardata"
STRINGS = INTEGRATION / "strings.json"
TRANSLATIONS = INTEGRATION / "translations"

# Hand-written languages: German, and BMW's other European markets.
LANGUAGES = ("de", "fr", "it", "es", "nl", "pl", "sv", "da", "nb", "fi", "cs", "pt")

# Home Assistant substitutes {name} placeholders and [%key:...%] references; both must survive
# translation unchanged or the user sees a raw brace or a missing value.
PLACEHOLDER = re.compile(r"\{[^{}\s]+\}|\[%key:[^%]+%\]")

type Tree = dict[str, object]


def flatten(tree: object, prefix: str = "") -> dict[str, str]:
    """Map dotted key paths to their texts."""
    if isinstance(tree, dict):
        flat: dict[str, str] = {}
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): str(tree)}


def nest(flat: dict[str, str], template: object, prefix: str = "") -> Tree:
    """Build a tree of the keys of flat that template has, in template's order."""
    tree: Tree = {}
    if not isinstance(template, dict):
        return tree
    for key, value in template.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            if branch := nest(flat, value, f"{path}."):
                tree[key] = branch
        elif path in flat:
            tree[key] = flat[path]
    return tree


def placeholders(text: str) -> list[str]:
    """Return the placeholders of a text, sorted, repeated ones once."""
    return sorted(set(PLACEHOLDER.findall(text)))


def problems(english: dict[str, str], language: str, texts: dict[str, str]) -> list[str]:
    """Every way texts (flattened) falls short of English, one line each."""
    found = [f"{language}.json lacks {key}" for key in english if key not in texts]
    found += [f"{language}.json has extra {key}" for key in texts if key not in english]
    for key, text in texts.items():
        if key not in english:
            continue
        if not text.strip():
            found.append(f"{language}.json has an empty {key}")
        elif placeholders(text) != placeholders(english[key]):
            found.append(
                f"{language}.json {key}: placeholders {placeholders(text)},"
                f" English has {placeholders(english[key])}"
            )
    return found


def read(path: Path) -> Tree:
    """Read a JSON object from a file; an absent file reads as empty."""
    if not path.exists():
        return {}
    tree = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(tree, dict):
        raise SystemExit(f"{path}: not a JSON object")
    return tree


def dump(tree: object) -> str:
    """Serialise the way the repository stores JSON."""
    return json.dumps(tree, indent=2, ensure_ascii=False) + "\n"


def check(strings: Tree, *, write_english: bool) -> list[str]:
    """Write or compare en.json, then check every language."""
    english = TRANSLATIONS / "en.json"
    found: list[str] = []
    if write_english:
        TRANSLATIONS.mkdir(exist_ok=True)
        english.write_text(dump(strings), encoding="utf-8")
    elif read(english) != strings:
        found.append("translations/en.json differs from strings.json")
    source = flatten(strings)
    for language in LANGUAGES:
        found += problems(source, language, flatten(read(TRANSLATIONS / f"{language}.json")))
    return found


def missing(strings: Tree, language: str) -> Tree:
    """Return the keys language lacks, with their English texts, shaped like strings.json."""
    present = flatten(read(TRANSLATIONS / f"{language}.json"))
    source = flatten(strings)
    return nest({k: v for k, v in source.items() if k not in present}, strings)


def merge(strings: Tree, language: str, update: Tree) -> list[str]:
    """Merge translated keys into the language file; return the problems left after it."""
    source = flatten(strings)
    added = flatten(update)
    refused = [f"{key}: strings.json has no such key" for key in added if key not in source]
    refused += [line for line in problems(source, language, added) if "lacks" not in line]
    if refused:
        raise SystemExit("Nothing merged:\n" + "\n".join(sorted(set(refused))))
    path = TRANSLATIONS / f"{language}.json"
    texts = flatten(read(path)) | added
    for key in sorted(set(texts) - set(source)):
        print(f"dropped {key} (no longer in strings.json)", file=sys.stderr)
    path.write_text(dump(nest(texts, strings)), encoding="utf-8")
    return problems(source, language, flatten(read(path)))


def main() -> int:
    """Run the command the arguments ask for."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="only check, write nothing")
    action.add_argument("--missing", metavar="LANG", choices=LANGUAGES, help="print gaps as JSON")
    action.add_argument("--merge", nargs=2, metavar=("LANG", "FILE"), help="merge translations")
    arguments = parser.parse_args()
    strings = read(STRINGS)
    if arguments.missing:
        sys.stdout.write(dump(missing(strings, arguments.missing)))
        return 0
    if arguments.merge:
        language, file = arguments.merge
        if language not in LANGUAGES:
            parser.error(f"{language} is not in LANGUAGES {LANGUAGES}; add it there first")
        found = merge(strings, language, read(Path(file)))
    else:
        found = check(strings, write_english=not arguments.check)
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
