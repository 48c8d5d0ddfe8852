"""aiokafka plumbing shared by the CLI commands: client security config (topic admin: shell/topics.py)."""
from __future__ import annotations

import ssl
from typing import Any

from remarket.config_errors import ConfigError
from remarket.settings import Settings


class BootstrapMissing(RuntimeError):
    pass


def bootstrap_of(settings: Settings) -> str:
    if not settings.kafka_bootstrap:
        raise BootstrapMissing(
            "REMARKET_KAFKA_BOOTSTRAP is not set: point it at your brokers (host:port), or start the "
            "local broker with `python deploy/kafka/local_broker.py start`")
    return settings.kafka_bootstrap


def client_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client, security included."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap_of(settings),
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        config["ssl_context"] = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL"):
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        config["sasl_plain_username"] = settings.kafka_sasl_username
        config["sasl_plain_password"] = (
            settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None)
    return config


def ssl_context(settings: Settings) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"REMARKET_KAFKA_SSL_CAFILE={settings.kafka_ssl_cafile}: cannot load the CA: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    if settings.kafka_ssl_certfile:
        try:
            context.load_cert_chain(str(settings.kafka_ssl_certfile),
                                    str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"REMARKET_KAFKA_SSL_CERTFILE={settings.kafka_ssl_certfile} / REMARKET_KAFKA_SSL_KEYFILE="
                              f"{settings.kafka_ssl_keyfile}: cannot load the client certificate: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
    return context


def changelog_topic(settings: Settings) -> str:
    """Faust names a table's changelog `{app_id}-{table}-changelog`."""
    return f"{settings.app_id}-customers-changelog"
