"""Every language has every text of strings.json, and Home Assistant shows them.

scripts/translations.py is the check; these tests run it, show that it catches what a
translator can get wrong, exercise the --missing/--merge procedure for new keys, and load each
language through Home Assistant's own translation helper.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
import re
import shutil
import sys
from types import ModuleType
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.translation import async_get_translations
import pytest

from custom_components.cardata.const import DOMAIN

ROOT = Path(__file__).resolve().parents[1]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "translations_script", ROOT / "scripts" / "translations.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = _load_script()
STRINGS: dict[str, Any] = json.loads(script.STRINGS.read_text(encoding="utf-8"))
ENGLISH: dict[str, str] = script.flatten(STRINGS)
ACCOUNT_KEY = "issues.budget_exhausted.title"
# The sign-in link of the device flow: translated link text, but {url} must stay its target.
LINK_TO_URL = re.compile(r"\[[^\[\]]+\]\(\{url\}\)")


def _language(code: str) -> dict[str, str]:
    path = script.TRANSLATIONS / f"{code}.json"
    flat: dict[str, str] = script.flatten(json.loads(path.read_text(encoding="utf-8")))
    return flat


def _run(monkeypatch: pytest.MonkeyPatch, *arguments: str) -> int:
    monkeypatch.setattr(sys, "argv", ["translations.py", *arguments])
    code: int = script.main()
    return code


# --- the check over the repository's files ----------------------------------------------------


def test_bmws_european_markets_are_checked() -> None:
    assert set(script.LANGUAGES) == {
        "de", "fr", "it", "es", "nl", "pl", "sv", "da", "nb", "fi", "cs", "pt"
    }  # fmt: skip


def test_every_language_is_complete(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The script's --check passes: no key or placeholder missing or different anywhere."""
    code = _run(monkeypatch, "--check")

    assert capsys.readouterr().out == ""
    assert code == 0


@pytest.mark.parametrize("language", script.LANGUAGES)
def test_each_language_is_translated_not_copied(language: str) -> None:
    texts = _language(language)
    copied = [key for key, text in texts.items() if text == ENGLISH[key]]
    # Short words can be the same in English (VIN, Image, Start); whole sentences cannot.
    assert all(len(ENGLISH[key].split()) <= 2 for key in copied), copied
    assert texts["config.step.user.title"] != ENGLISH["config.step.user.title"]


@pytest.mark.parametrize("language", script.LANGUAGES)
def test_each_language_keeps_brand_names_and_markdown(language: str) -> None:
    texts = _language(language)
    progress = texts["config.progress.wait_for_approval"]
    assert LINK_TO_URL.search(ENGLISH["config.progress.wait_for_approval"])
    assert LINK_TO_URL.search(progress), progress
    assert "**{user_code}**" in progress
    assert "BMW" in texts["options.step.init.title"]
    assert "CarData" in texts["options.step.init.title"]
    assert "Home Assistant" in texts["config.step.user.description"]


# --- what the check catches -------------------------------------------------------------------


def test_a_missing_key_is_reported() -> None:
    texts = _language("fr")
    del texts[ACCOUNT_KEY]

    assert script.problems(ENGLISH, "fr", texts) == [f"fr.json lacks {ACCOUNT_KEY}"]


def test_an_extra_key_is_reported() -> None:
    texts = _language("fr") | {"issues.gone.title": "Disparu"}

    assert script.problems(ENGLISH, "fr", texts) == ["fr.json has extra issues.gone.title"]


def test_an_empty_text_is_reported() -> None:
    texts = _language("fr") | {ACCOUNT_KEY: " "}

    assert script.problems(ENGLISH, "fr", texts) == [f"fr.json has an empty {ACCOUNT_KEY}"]


@pytest.mark.parametrize(
    "text",
    [
        "Quota BMW CarData épuisé",  # placeholder dropped
        "Quota BMW CarData épuisé pour {compte}",  # placeholder translated
        "Quota BMW CarData épuisé pour {account} ({error})",  # placeholder invented
    ],
)
def test_a_changed_placeholder_is_reported(text: str) -> None:
    texts = _language("fr") | {ACCOUNT_KEY: text}

    (problem,) = script.problems(ENGLISH, "fr", texts)
    assert problem.startswith(f"fr.json {ACCOUNT_KEY}: placeholders")
    assert "English has ['{account}']" in problem


def test_the_check_fails_with_a_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    translations = _scratch_copy(tmp_path, monkeypatch)
    french = json.loads((translations / "fr.json").read_text(encoding="utf-8"))
    del french["entity"]["sensor"]["odometer"]
    french["exceptions"]["action_invalid_range"]["message"] = "Le début doit précéder la fin."
    (translations / "fr.json").write_text(json.dumps(french), encoding="utf-8")

    code = _run(monkeypatch, "--check")

    assert code == 1
    assert capsys.readouterr().out.splitlines() == [
        "fr.json lacks entity.sensor.odometer.name",
        "fr.json exceptions.action_invalid_range.message: placeholders [],"
        " English has ['{end}', '{start}']",
    ]


# --- translating keys added later: --missing, then --merge -------------------------------------


def _scratch_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the script at a copy of strings.json and the translations."""
    shutil.copy(script.STRINGS, tmp_path / "strings.json")
    shutil.copytree(script.TRANSLATIONS, tmp_path / "translations")
    monkeypatch.setattr(script, "STRINGS", tmp_path / "strings.json")
    monkeypatch.setattr(script, "TRANSLATIONS", tmp_path / "translations")
    return tmp_path / "translations"


def _add_english_key(tmp_path: Path) -> None:
    strings = json.loads((tmp_path / "strings.json").read_text(encoding="utf-8"))
    strings["exceptions"]["charging_estimate_unknown"] = {
        "message": "No charging estimate for {vin} yet."
    }
    (tmp_path / "strings.json").write_text(json.dumps(strings), encoding="utf-8")


def test_missing_prints_new_keys_with_their_english_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _scratch_copy(tmp_path, monkeypatch)
    _add_english_key(tmp_path)

    code = _run(monkeypatch, "--missing", "it")

    assert code == 0
    assert json.loads(capsys.readouterr().out) == {
        "exceptions": {
            "charging_estimate_unknown": {"message": "No charging estimate for {vin} yet."}
        }
    }


def test_merge_adds_translated_keys_in_the_order_of_strings_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    translations = _scratch_copy(tmp_path, monkeypatch)
    _add_english_key(tmp_path)
    before = (translations / "it.json").read_text(encoding="utf-8")
    update = tmp_path / "it-new.json"
    update.write_text(
        json.dumps({"exceptions.charging_estimate_unknown.message": "Nessuna stima per {vin}."}),
        encoding="utf-8",
    )

    code = _run(monkeypatch, "--merge", "it", str(update))

    # Exit 0 with nothing printed: Italian has no gap left.
    assert code == 0
    assert capsys.readouterr().out == ""
    merged = json.loads((translations / "it.json").read_text(encoding="utf-8"))
    assert merged["exceptions"]["charging_estimate_unknown"]["message"] == (
        "Nessuna stima per {vin}."
    )
    assert list(merged) == list(json.loads(before))
    assert list(merged["exceptions"])[-1] == "charging_estimate_unknown"


def test_merge_refuses_a_wrong_placeholder_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    translations = _scratch_copy(tmp_path, monkeypatch)
    _add_english_key(tmp_path)
    before = (translations / "it.json").read_text(encoding="utf-8")
    update = tmp_path / "it-new.json"
    update.write_text(
        json.dumps(
            {"exceptions": {"charging_estimate_unknown": {"message": "Nessuna stima per {vim}."}}}
        ),
        encoding="utf-8",
    )

    with pytest.raises(SystemExit, match=r"Nothing merged:\n.*placeholders \['\{vim\}'\]"):
        _run(monkeypatch, "--merge", "it", str(update))

    assert (translations / "it.json").read_text(encoding="utf-8") == before


def test_merge_refuses_a_key_strings_json_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    translations = _scratch_copy(tmp_path, monkeypatch)
    before = (translations / "pl.json").read_text(encoding="utf-8")
    update = tmp_path / "pl-new.json"
    update.write_text(json.dumps({"exceptions.no_such_key.message": "Brak"}), encoding="utf-8")

    with pytest.raises(SystemExit, match=r"exceptions\.no_such_key\.message: strings\.json has no"):
        _run(monkeypatch, "--merge", "pl", str(update))

    assert (translations / "pl.json").read_text(encoding="utf-8") == before


def test_merge_drops_keys_strings_json_no_longer_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    translations = _scratch_copy(tmp_path, monkeypatch)
    strings = json.loads((tmp_path / "strings.json").read_text(encoding="utf-8"))
    del strings["entity"]["button"]
    (tmp_path / "strings.json").write_text(json.dumps(strings), encoding="utf-8")
    update = tmp_path / "empty.json"
    update.write_text("{}", encoding="utf-8")

    code = _run(monkeypatch, "--merge", "cs", str(update))

    assert code == 0
    assert "dropped entity.button.refresh_image.name" in capsys.readouterr().err
    czech = json.loads((translations / "cs.json").read_text(encoding="utf-8"))
    assert "button" not in czech["entity"]


def test_a_new_language_starts_with_every_key_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    translations = _scratch_copy(tmp_path, monkeypatch)
    (translations / "sv.json").unlink()

    assert _run(monkeypatch, "--missing", "sv") == 0
    assert json.loads(capsys.readouterr().out) == STRINGS
    assert _run(monkeypatch, "--check") == 1
    assert len(capsys.readouterr().out.splitlines()) == len(ENGLISH)


# --- in Home Assistant ------------------------------------------------------------------------

CATEGORIES = ("config", "options", "entity", "services", "exceptions", "issues")


@pytest.mark.parametrize("language", script.LANGUAGES)
async def test_home_assistant_shows_every_text_of_each_language(
    hass: HomeAssistant, language: str
) -> None:
    """Home Assistant's translation helper loads each file, every key with its own text."""
    expected = _language(language)
    loaded: dict[str, str] = {}
    for category in CATEGORIES:
        loaded |= await async_get_translations(hass, language, category, [DOMAIN])

    prefix = f"component.{DOMAIN}."
    assert {key.removeprefix(prefix): text for key, text in loaded.items()} == expected


async def test_a_french_user_sees_french_entity_names(hass: HomeAssistant) -> None:
    texts = await async_get_translations(hass, "fr", "entity", {DOMAIN})

    sensor = f"component.{DOMAIN}.entity.sensor"
    assert texts[f"{sensor}.state_of_charge.name"] == "État de charge"
    assert texts[f"{sensor}.charging_status.state.charging_active"] == "Charge active"
    assert texts[f"component.{DOMAIN}.entity.binary_sensor.trunk.name"] == "Coffre"
