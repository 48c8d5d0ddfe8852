"""Configuration problems as one line each: which setting or field, what it was, what is allowed.

The CLI prints these instead of a traceback (exit code 2). Pure functions over pydantic's errors.
"""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from remarket.settings import Settings

PREFIX = Settings.model_config.get("env_prefix", "REMARKET_")
_PHRASES = (("Input should be ", "must be "), ("Value error, ", ""), ("Field required", "required"))


class ConfigError(ValueError):
    """A setting, the policy file or the topic layout cannot be used; the message is one line."""


def _plain(message: str) -> str:
    for old, new in _PHRASES:
        message = message.replace(old, new)
    return message


def _shown(value: Any) -> str:
    text = str(value)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def settings_error(exc: ValidationError) -> ConfigError:
    """`REMARKET_WEB_PORT='99999': must be less than or equal to 65535` (several joined by '; ')."""
    parts = []
    for error in exc.errors():
        name = PREFIX + "_".join(str(part) for part in error["loc"][:1]).upper()
        secret = error["loc"] and _is_secret(str(error["loc"][0]))
        shown = "" if secret or "input" not in error else f"={_shown(error['input'])}"
        parts.append(f"{name}{shown}: {_plain(error['msg'])}")
    return ConfigError("invalid setting " + "; ".join(parts))


def policy_error(path: Any, exc: Exception, via: str = f"{PREFIX}POLICY_FILE") -> ConfigError:
    """The policy's errors (one per line in PolicyError) on one line, naming the file and its setting."""
    problems = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return ConfigError(f"{via}={path}: invalid policy: {problems} "
                       f"(check it with `remarket policy check {path}`)")


def _is_secret(name: str) -> bool:
    field = Settings.model_fields.get(name)
    return field is not None and "SecretStr" in str(field.annotation)


IMPORTANT_SETTINGS = ("kafka_bootstrap", "processing_guarantee", "data_dir", "partitions", "policy_file",
                      "web_port", "lookup_token")


def settings_help() -> str:
    """The important settings for `remarket worker --help`; the rest are in docs/configuration.md."""
    from remarket.devkit.configdoc import FALLBACK_DESCRIPTIONS

    lines = ["settings (environment variables):"]
    for name in IMPORTANT_SETTINGS:
        field = Settings.model_fields[name]
        description = field.description or FALLBACK_DESCRIPTIONS.get(name, "")
        default = "unset" if field.default is None else field.default
        lines.append(f"  {PREFIX}{name.upper():<22} {description} [default: {default}]")
    lines.append(f"  {PREFIX}TOPIC_<ROLE>{'':<10} the store's own topic name for a role: VISITS, ORDERS, CARTS, "
                 "EMAIL, CONSENT, TICKS, ACTIONS, HOLDOUT, PROFILES, DEAD_LETTER")
    lines.append("")
    lines.append("Every setting, with types and limits: docs/configuration.md. Input topics must exist: "
                 "create them with `remarket topics apply`.")
    return "\n".join(lines)
