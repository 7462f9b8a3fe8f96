"""How every Kafka client of the project authenticates: settings → client arguments.

One place turns ``GYEONGBO_KAFKA__SECURITY_PROTOCOL``, ``__SASL_*`` and ``__SSL_*``
(:class:`~gyeongbo.settings.KafkaSettings`) into what the clients take: keyword arguments of
aiokafka's producer, consumer and admin client (the bridge, ``topics create``, the drill
runner), and Faust's ``broker_credentials`` (the workers). The local stack speaks
``PLAINTEXT``, so the defaults add nothing but the protocol.

>>> from gyeongbo.settings import KafkaSettings
>>> aiokafka_security(KafkaSettings())
{'security_protocol': 'PLAINTEXT'}
>>> kw = aiokafka_security(KafkaSettings(security_protocol="SASL_PLAINTEXT",
...     sasl_mechanism="SCRAM-SHA-512", sasl_username="bridge", sasl_password="pw"))
>>> kw["sasl_mechanism"], kw["sasl_plain_username"], kw["sasl_plain_password"]
('SCRAM-SHA-512', 'bridge', 'pw')
>>> faust_credentials(KafkaSettings()) is None
True
"""

from __future__ import annotations

import ssl
from typing import Any

from gyeongbo.settings import KafkaSettings

__all__ = ["aiokafka_security", "faust_credentials", "ssl_context"]


def ssl_context(k: KafkaSettings) -> ssl.SSLContext:
    """A client TLS context: the CA file (or the system store), an optional client
    certificate, hostname checking as set."""
    ctx = ssl.create_default_context(cafile=str(k.ssl_cafile) if k.ssl_cafile else None)
    if k.ssl_certfile:
        ctx.load_cert_chain(str(k.ssl_certfile), str(k.ssl_keyfile) if k.ssl_keyfile else None)
    ctx.check_hostname = k.ssl_check_hostname
    return ctx


def aiokafka_security(k: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaProducer``/``AIOKafkaConsumer``/``AIOKafkaAdminClient``."""
    out: dict[str, Any] = {"security_protocol": k.security_protocol}
    if k.security_protocol in ("SSL", "SASL_SSL"):
        out["ssl_context"] = ssl_context(k)
    if k.security_protocol.startswith("SASL"):
        out["sasl_mechanism"] = k.sasl_mechanism
        out["sasl_plain_username"] = k.sasl_username
        out["sasl_plain_password"] = k.sasl_password.get_secret_value() if k.sasl_password else None
    return out


def faust_credentials(k: KafkaSettings) -> Any:
    """Faust's ``broker_credentials`` (``SASLCredentials`` or ``SSLCredentials``), or None
    for ``PLAINTEXT``. Faust hands them to its aiokafka clients, changelogs included."""
    import faust

    if k.security_protocol == "PLAINTEXT":
        return None
    ctx = ssl_context(k) if k.security_protocol in ("SSL", "SASL_SSL") else None
    if k.security_protocol == "SSL":
        return faust.SSLCredentials(ctx)
    return faust.SASLCredentials(
        username=k.sasl_username,
        password=k.sasl_password.get_secret_value() if k.sasl_password else None,
        ssl_context=ctx,
        mechanism=k.sasl_mechanism,
    )
