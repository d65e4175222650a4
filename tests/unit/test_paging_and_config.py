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
        ({"GOVEX_LOG_LEVEL": "verbose"}, "log_level: 'verbose' is not one of DEBUG"),
        ({"GOVEX_LOG_FORMAT": "xml"}, "log_format"),
        ({"GOVEX_DATABASE_URL": "foo://bar"}, "database_url: unsupported database 'foo'"),
        ({"GOVEX_DATABASE_URL": "not a url"}, "database_url: 'not a url' is not a URL"),
        ({"GOVEX_DATABASE_URL": "sqlite:///:memory:"}, "database_url: sqlite needs a file"),
        (
            {"GOVEX_DATABASE_URL": "sqlite:///no/such/dir/govex.db"},
            "database_url: the directory 'no/such/dir' of the SQLite file does not exist",
        ),
        ({"GOVEX_METRICS_LISTEN": "9464"}, "metrics_listen"),
        ({"GOVEX_CONSOLE_LISTEN": "0.0.0.0:8080"}, "console_listen: 0.0.0.0:8080 is not a loop"),
    ],
)
def test_bad_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(None, env)


def test_metrics_can_be_switched_off_and_the_default_database_needs_no_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no var/ here: the default may still be used
    assert load_settings(None, {}).metrics_listen == "127.0.0.1:9464"
    assert load_settings(None, {"GOVEX_METRICS_LISTEN": ""}).metrics_listen == ""  # off
    config = tmp_path / "govex.toml"
    config.write_text('metrics_listen = ""\n')
    assert load_settings(str(config), {}).metrics_listen == ""
    assert not (tmp_path / "var").exists()  # validating creates nothing


def test_unknown_setting_in_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "govex.toml"
    config.write_text("colour = 'red'\n")
    with pytest.raises(ConfigError, match="unknown settings"):
        load_settings(str(config), {})


def test_policy_thresholds_come_from_the_policy_table(tmp_path: Path) -> None:
    from datetime import timedelta

    config = tmp_path / "govex.toml"
    config.write_text(
        "min_trade_usd = 250\n[policy]\nstale_after_minutes = 45\nprudent_enter = 0.5\n"
    )
    settings = load_settings(str(config), {})
    assert settings.policy.stale_after == timedelta(minutes=45)
    assert settings.policy.prudent_enter == 0.5
    assert settings.policy.error_after == timedelta(minutes=120)  # default kept
    assert settings.min_trade_usd == 250


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("stale_after = 45", "unknown \\[policy\\] setting 'stale_after'"),
        ("colour = 1", "unknown \\[policy\\] setting"),
        ("stale_after_minutes = 200", "fresh_below < stale_after < error_after"),
        ("prudent_exit = 0.6", "prudent_exit < prudent_enter"),
        ("smoothing = 1.5", "smoothing"),
    ],
)
def test_bad_policy_settings_are_refused(tmp_path: Path, table: str, message: str) -> None:
    config = tmp_path / "govex.toml"
    config.write_text(f"[policy]\n{table}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(str(config), {})


def test_phase_persistence_comes_from_the_phase_table(tmp_path: Path) -> None:
    from datetime import timedelta

    config = tmp_path / "govex.toml"
    config.write_text(
        "[phase]\nstreak_needed = 4\nmin_span_minutes = 45\nfreshness_horizon_minutes = 20\n"
    )
    settings = load_settings(str(config), {})
    assert settings.phase.streak_needed == 4
    assert settings.phase.min_span == timedelta(minutes=45)
    assert settings.phase.freshness_horizon_minutes == 20
    config.write_text("[phase]\nstreak_needed = 0\n")
    with pytest.raises(ConfigError, match="streak_needed"):
        load_settings(str(config), {})


def test_the_migration_head_constant_is_the_newest_script() -> None:
    """Start-up skips Alembic when the database is at HEAD: HEAD must be the
    newest revision, or a new migration would never run."""
    from govex_server.store.migrate import HEAD, script_head

    assert script_head() == HEAD
