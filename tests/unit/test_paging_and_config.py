"""Page tokens, settings precedence and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from govex_server.config import ConfigError, load_settings
from govex_server.domain.errors import GovexError
from govex_server.domain.paging import MAX_PAGE_SIZE, filter_key, next_token, parse_page

KEY = filter_key(["ACTIVE"])
ID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"


def test_first_page_defaults_and_caps() -> None:
    assert parse_page(0, "", KEY).size == 50
    assert parse_page(5000, "", KEY).size == MAX_PAGE_SIZE


def test_negative_page_size_names_the_field() -> None:
    with pytest.raises(GovexError) as caught:
        parse_page(-1, "", KEY)
    assert caught.value.field_violations[0].field == "page_size"


def test_token_round_trip() -> None:
    page = parse_page(10, "", KEY)
    token = next_token(page, ID, True)
    assert parse_page(10, token, KEY).after_id == ID
    assert next_token(page, ID, False) == ""


@pytest.mark.parametrize("token", ["garbage", "!!!", "eyJhIjoxfQ", "e30", "bm90IGpzb24"])
def test_garbage_token_names_the_field(token: str) -> None:
    with pytest.raises(GovexError) as caught:
        parse_page(10, token, KEY)
    assert caught.value.field_violations[0].field == "page_token"


def test_token_from_another_filter_is_refused() -> None:
    token = next_token(parse_page(10, "", KEY), ID, True)
    with pytest.raises(GovexError):
        parse_page(10, token, filter_key(["DRAFT"]))


def test_settings_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    config = tmp_path / "govex.toml"
    config.write_text('listen = "127.0.0.1:1000"\ncooldown_hours = 2\n')
    env = {"GOVEX_LISTEN": "127.0.0.1:2000", "GOVEX_COOLDOWN_HOURS": "3"}
    assert load_settings(str(config), {}).listen == "127.0.0.1:1000"
    assert load_settings(str(config), env).listen == "127.0.0.1:2000"
    assert load_settings(str(config), env).cooldown_hours == 3
    flags = {"listen": "127.0.0.1:3000"}
    assert load_settings(str(config), env, flags).listen == "127.0.0.1:3000"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GOVEX_COOLDOWN_HOURS": "0.5"}, "cooldown_hours"),
        ({"GOVEX_COOLDOWN_HOURS": "200"}, "cooldown_hours"),
        ({"GOVEX_COOLDOWN_HOURS": "soon"}, "GOVEX_COOLDOWN_HOURS"),
        ({"GOVEX_LISTEN": "nowhere"}, "listen"),
    ],
)
def test_bad_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(None, env)


def test_unknown_setting_in_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "govex.toml"
    config.write_text("colour = 'red'\n")
    with pytest.raises(ConfigError, match="unknown settings"):
        load_settings(str(config), {})
