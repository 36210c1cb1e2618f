"""Settings come from SESSIONLOG_ variables and an optional TOML file; the environment wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionlog.settings import Settings


def test_embedded_default_lives_in_the_data_folder_and_migrates_itself(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SESSIONLOG_DATABASE_URL", raising=False)
    settings = Settings(data_dir=tmp_path)
    assert settings.effective_database_url == f"sqlite:///{tmp_path.resolve()}/sessionlog.sqlite3"
    assert settings.should_auto_migrate


def test_a_named_database_is_not_migrated_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONLOG_DATABASE_URL", "postgresql://db.example/sessions")
    settings = Settings()
    assert settings.effective_database_url == "postgresql://db.example/sessions"
    assert not settings.should_auto_migrate
    monkeypatch.setenv("SESSIONLOG_AUTO_MIGRATE", "true")
    assert Settings().should_auto_migrate


def test_toml_file_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "sessionlog.toml"
    config.write_text(
        'data_dir = "/srv/sessionlog"\nport = 9000\nsite_policy_path = "policy.toml"\n'
    )
    monkeypatch.setenv("SESSIONLOG_CONFIG_FILE", str(config))
    monkeypatch.setenv("SESSIONLOG_PORT", "9100")
    settings = Settings()
    assert settings.data_dir == Path("/srv/sessionlog")
    assert settings.site_policy_path == Path("policy.toml")
    assert settings.port == 9100


def test_a_missing_config_file_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SESSIONLOG_CONFIG_FILE", str(tmp_path / "absent.toml"))
    with pytest.raises(FileNotFoundError, match=r"absent\.toml"):
        Settings()
