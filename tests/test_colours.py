"""WCAG contrast, shared by the config check and the UI theme."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.api.models import Branch
from kiosk.colours import contrast
from kiosk.config import load_config
from kiosk.errors import ConfigError


def test_contrast_known_values() -> None:
    assert contrast("#FFFFFF", "#000000") == pytest.approx(21.0)
    assert contrast("#0B2545", "#0B2545") == pytest.approx(1.0)
    assert contrast("#767676", "#FFFFFF") == pytest.approx(4.54, abs=0.01)  # WCAG's edge grey


def test_default_theme_meets_4_5_to_1() -> None:
    from kiosk.ui.theme import Theme  # no Kivy import at module level
    assert Theme().check() == []
    assert Theme(brand="#7FA7D9").check() == ["text on background: 2.5:1"]  # L = 0.372


def test_config_refuses_a_brand_colour_white_text_cannot_be_read_on(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text("branch: b\nkiosk: {id: a}\nui: {brand_color: '#7FA7D9'}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "ui.brand_color" and "4.5:1" in info.value.expected


def test_branch_matches_id_or_integration_id() -> None:
    b = Branch.model_validate({"id": "652720d479497a1b62df288b", "integrationId": "provi"})
    assert b.matches("652720d479497a1b62df288b") and b.matches("provi")
    assert not b.matches("other")
    assert not Branch(id="x").matches("")
