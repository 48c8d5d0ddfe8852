"""REMARKET_* variables found in deployment files must be real settings with valid values."""
from __future__ import annotations

from remarket.settings import Settings

PREFIX = "REMARKET_"


def setting_env_names() -> set[str]:
    return {PREFIX + name.upper() for name in Settings.model_fields}


def assert_valid_settings(env: dict[str, str], where: str, monkeypatch) -> Settings:
    unknown = {k for k in env if k.startswith(PREFIX)} - setting_env_names()
    assert not unknown, f"{where}: {sorted(unknown)} are not settings (Settings ignores them silently)"
    for key in [k for k in __import__("os").environ if k.startswith(PREFIX)]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith(PREFIX):
            monkeypatch.setenv(key, str(value))
    return Settings()  # raises when a value does not validate
