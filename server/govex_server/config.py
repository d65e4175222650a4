"""Typed settings: defaults < TOML file < GOVEX_* environment < command-line flags."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from govex_server.domain.execution.resting import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_TTL_SECONDS,
    MAX_ATTEMPTS_LIMIT,
)
from govex_server.domain.governance import (
    MAX_COOLDOWN_HOURS,
    MIN_COOLDOWN_HOURS,
    cooldown_hours_valid,
)
from govex_server.domain.phase import PhaseSettings, phase_problems
from govex_server.domain.policy_settings import PolicySettings, policy_problems
from govex_server.domain.principals import Principal, parse_principals
from govex_server.logs import FORMATS, LEVELS


class ConfigError(ValueError):
    """The configuration is invalid; the server refuses to start. The
    message has one line per problem."""

    def lines(self, prefix: str) -> str:
        """Every problem on its own line, each starting with ``prefix``."""
        return "\n".join(f"{prefix}{line}" for line in str(self).splitlines())


@dataclass(frozen=True)
class Settings:
    """Everything the server can be told. Each field is also GOVEX_<NAME>."""

    listen: str = "127.0.0.1:50051"
    database_url: str = "sqlite:///var/govex.db"
    principals_file: str = ""
    cooldown_hours: float = 24.0
    shutdown_grace_seconds: float = 10.0
    log_level: str = "INFO"
    log_format: str = "json"
    # Prometheus exposition (GET /metrics) on host:port; empty: off.
    metrics_listen: str = "127.0.0.1:9464"
    # The operator console (HTTP, HTTPS with the TLS settings); empty: off.
    console_listen: str = "127.0.0.1:8080"
    # Signs the console's session cookies; empty: a random one per start.
    console_secret: str = ""
    heartbeat_seconds: float = 10.0
    subscriber_queue_size: int = 1000
    event_poll_seconds: float = 2.0
    event_retention_hours: float = 168.0
    event_retention_keep: int = 10000
    min_trade_usd: float = 100.0
    # The longest schedule an execution may have (a longer one is refused).
    max_execution_days: int = 30
    # A limit order resting unfilled this long is cancelled and sent again at
    # a fresh price, up to max_attempts sends of a slice; then its leg fails.
    order_ttl_seconds: float = DEFAULT_TTL_SECONDS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    # An execution's lease (PostgreSQL replicas): how long its owner holds
    # it without renewing; a dead owner is replaced within this plus a third.
    lease_seconds: float = 10.0
    signals_future_skew_seconds: float = 30.0
    paper_exchange_file: str = ""
    # The paper exchange's own book (balances, orders); beside a SQLite
    # database when empty.
    paper_book_file: str = ""
    max_order_notional: float = 50_000.0
    daily_notional_limit: float = 1_000_000.0
    price_collar_bps: float = 600.0
    safety_level: str = "MODERATE"
    # Per-account order-rate budget (Binance spot: 40 orders per 10 s).
    max_orders_per_window: int = 40
    order_window_seconds: float = 10.0
    # Fernet key (base64) encrypting exchange credentials at rest.
    credentials_key: str = ""
    # Live (non-sandbox) trading must be switched on explicitly.
    live_trading_enabled: bool = False
    # Idempotency keys (request_id) are honoured this long (AIP-155).
    request_id_retention_hours: float = 72.0
    # TLS: the server's certificate chain and key (PEM). With
    # tls_client_ca_file, clients must present a certificate signed by it
    # (mTLS); its subject CN or a SAN may name a principal.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    # Listening on a non-loopback address without TLS is refused unless set.
    allow_insecure: bool = False
    # Open streams per connection and per principal; more are refused with
    # RESOURCE_EXHAUSTED.
    max_streams_per_connection: int = 100
    max_streams_per_principal: int = 500
    # Re-read the principals file this often (it is also re-read on SIGHUP);
    # 0: only on SIGHUP.
    principals_reload_seconds: float = 0.0
    # Every threshold of POLICY.md, from the [policy] table of the config
    # file (durations as <name>_minutes). Not an environment variable.
    policy: PolicySettings = field(default_factory=PolicySettings)
    # The phase engine's persistence rule, from the [phase] table.
    phase: PhaseSettings = field(default_factory=PhaseSettings)

    def validate(self) -> Settings:
        """Returns self, or raises ConfigError naming the setting."""
        host, sep, port = self.listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"listen: {self.listen!r} is not host:port")
        if not cooldown_hours_valid(self.cooldown_hours):
            raise ConfigError(
                f"cooldown_hours: {self.cooldown_hours} is outside "
                f"{MIN_COOLDOWN_HOURS:g}-{MAX_COOLDOWN_HOURS:g}"
            )
        if not 0 <= self.shutdown_grace_seconds <= 300:
            raise ConfigError("shutdown_grace_seconds: must be between 0 and 300")
        if self.log_format not in FORMATS:
            raise ConfigError(f"log_format: {self.log_format!r} is not 'json' or 'text'")
        if self.log_level.upper() not in LEVELS:
            raise ConfigError(f"log_level: {self.log_level!r} is not one of {', '.join(LEVELS)}")
        for name in ("metrics_listen", "console_listen"):
            value = getattr(self, name)
            m_host, m_sep, m_port = value.rpartition(":")
            if value and (
                not m_sep or not m_host or not m_port.isdigit() or not 0 <= int(m_port) <= 65535
            ):
                raise ConfigError(f"{name}: {value!r} is not host:port (empty: off)")
        if not self.database_url:
            raise ConfigError("database_url: required")
        if problem := _database_problem(self.database_url):
            raise ConfigError(f"database_url: {problem}")
        if not 0.05 <= self.heartbeat_seconds <= 300:
            raise ConfigError("heartbeat_seconds: must be between 0.05 and 300")
        if not 1 <= self.subscriber_queue_size <= 1_000_000:
            raise ConfigError("subscriber_queue_size: must be between 1 and 1000000")
        if not 0.05 <= self.event_poll_seconds <= 60:
            raise ConfigError("event_poll_seconds: must be between 0.05 and 60")
        if not 1 <= self.lease_seconds <= 600:
            raise ConfigError("lease_seconds: must be between 1 and 600")
        if self.event_retention_hours < 1:
            raise ConfigError("event_retention_hours: at least 1")
        if self.event_retention_keep < 0:
            raise ConfigError("event_retention_keep: not negative")
        if not 1 <= self.max_execution_days <= 3650:
            raise ConfigError("max_execution_days: must be between 1 and 3650")
        if not 1 <= self.order_ttl_seconds <= 86_400:
            raise ConfigError("order_ttl_seconds: must be between 1 and 86400")
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS_LIMIT:
            raise ConfigError(f"max_attempts: must be between 1 and {MAX_ATTEMPTS_LIMIT}")
        if self.min_trade_usd < 10:
            raise ConfigError("min_trade_usd: at least 10")
        if not 0 <= self.signals_future_skew_seconds <= 600:
            raise ConfigError("signals_future_skew_seconds: 0 to 600")
        if self.max_orders_per_window < 1 or self.order_window_seconds <= 0:
            raise ConfigError("max_orders_per_window >= 1 and order_window_seconds > 0")
        if self.safety_level not in ("STRICT", "MODERATE", "PERMISSIVE"):
            raise ConfigError("safety_level: STRICT, MODERATE or PERMISSIVE")
        if min(self.max_order_notional, self.daily_notional_limit, self.price_collar_bps) <= 0:
            raise ConfigError("max_order_notional, daily_notional_limit, price_collar_bps: > 0")
        if not 1 <= self.request_id_retention_hours <= 8760:
            raise ConfigError("request_id_retention_hours: must be between 1 and 8760")
        self._validate_transport(host)
        # Every bad number of the two tables at once, one line each: tuning
        # is done in bulk and a fix-one-rerun loop helps nobody.
        bad = policy_problems(self.policy) + phase_problems(self.phase)
        if bad:
            raise ConfigError("\n".join(bad))
        return self

    def policy_settings(self) -> PolicySettings:
        """The ``[policy]`` table with the top-level minimum trade in it."""
        return replace(self.policy, min_trade_usd=self.min_trade_usd)

    def _validate_transport(self, host: str) -> None:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ConfigError("tls_cert_file and tls_key_file: give both or neither")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ConfigError("tls_client_ca_file: needs tls_cert_file and tls_key_file")
        # Both carry bearer tokens: the gRPC port and the console (empty: off).
        listeners = (
            ("listen", self.listen, host),
            ("console_listen", self.console_listen, self.console_listen.rpartition(":")[0]),
        )
        for name, address, where in listeners:
            if address and not is_loopback(where) and not self.tls and not self.allow_insecure:
                raise ConfigError(
                    f"{name}: {address} is not a loopback address and TLS is off: set "
                    "tls_cert_file and tls_key_file, or allow_insecure = true to send bearer "
                    "tokens and exchange secrets in clear text on purpose"
                )
        if not 1 <= self.max_streams_per_connection <= 100_000:
            raise ConfigError("max_streams_per_connection: must be between 1 and 100000")
        if not 1 <= self.max_streams_per_principal <= 1_000_000:
            raise ConfigError("max_streams_per_principal: must be between 1 and 1000000")
        if self.principals_reload_seconds != 0 and not 1 <= self.principals_reload_seconds <= 86400:
            raise ConfigError("principals_reload_seconds: 0 (off) or between 1 and 86400")

    @property
    def tls(self) -> bool:
        """True when the server listens with TLS."""
        return bool(self.tls_cert_file)


DEFAULT_DATABASE_URL = Settings.database_url
# Settings whose empty environment variable means "off", not "not set".
EMPTY_MEANS_OFF = frozenset({"metrics_listen", "console_listen"})


def _database_problem(url: str) -> str | None:
    """What is wrong with a database URL, before anything connects. A SQLite
    file's directory must exist: the server creates only its default var/,
    never the directories of a path someone may have mistyped."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return f"{url!r} is not a URL (sqlite:///path/file.db or postgresql://...)"
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return "sqlite needs a file (the writer and the readers share it)"
        directory = Path(parsed.database).parent
        if url != DEFAULT_DATABASE_URL and not directory.is_dir():
            return f"the directory {str(directory)!r} of the SQLite file does not exist"
        return None
    if backend not in ("postgresql", "postgres"):
        return f"unsupported database {backend!r}: sqlite:/// or postgresql://"
    return None


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach."""
    import ipaddress

    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _table(table: Any, where: str, section: str, kind: type, skip: str = "") -> dict[str, Any]:
    """Values for the dataclass ``kind`` from a TOML table; durations are
    given as ``<name>_minutes``."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{section}] must be a table")
    known = {f.name: f for f in fields(kind) if f.name != skip}
    values: dict[str, Any] = {}
    for key, raw in table.items():
        name = key if key in known else key.removesuffix("_minutes")
        spec = known.get(name)
        is_duration = spec is not None and str(spec.type) == "timedelta"
        if spec is None or is_duration != (name != key):
            accepted = sorted(
                f"{n}_minutes" if str(f.type) == "timedelta" else n for n, f in known.items()
            )
            raise ConfigError(f"{where}: unknown [{section}] setting {key!r} (one of {accepted})")
        number = _coerce(f"{section}.{key}", raw, int if str(spec.type) == "int" else float)
        values[name] = timedelta(minutes=number) if is_duration else number
    return values


def _coerce(name: str, raw: Any, kind: type) -> Any:
    try:
        if kind is float:
            return float(raw)
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("1", "true", "yes"):
                return True
            if str(raw).lower() in ("0", "false", "no"):
                return False
            raise ValueError(raw)
        if kind is int:
            if isinstance(raw, float) or (isinstance(raw, str) and not raw.strip().isdigit()):
                raise ValueError(raw)
            return int(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: {raw!r} is not a {kind.__name__}") from None


def load_settings(
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Builds the settings from every source, the later ones winning."""
    environ = os.environ if environ is None else environ
    types = {"float": float, "int": int, "str": str, "bool": bool}
    kinds = {f.name: types[str(f.type)] for f in fields(Settings) if str(f.type) in types}
    values: dict[str, Any] = {}
    config_file = config_file or environ.get("GOVEX_CONFIG_FILE")
    if config_file:
        try:
            document = tomllib.loads(Path(config_file).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {config_file}: {exc}") from None
        if (policy_table := document.pop("policy", None)) is not None:
            values["policy"] = PolicySettings(
                **_table(policy_table, config_file, "policy", PolicySettings, "min_trade_usd")
            )
        if (phase_table := document.pop("phase", None)) is not None:
            values["phase"] = PhaseSettings(
                **_table(phase_table, config_file, "phase", PhaseSettings)
            )
        unknown = set(document) - set(kinds)
        if unknown:
            raise ConfigError(f"config file {config_file}: unknown settings {sorted(unknown)}")
        values.update({k: _coerce(k, v, kinds[k]) for k, v in document.items()})
    for name, kind in kinds.items():
        env_value = environ.get(f"GOVEX_{name.upper()}")
        if env_value is not None and (env_value != "" or name in EMPTY_MEANS_OFF):
            values[name] = _coerce(f"GOVEX_{name.upper()}", env_value, kind)
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _coerce(name, value, kinds[name])
    return replace(Settings(), **values).validate()


def load_principals(path: str) -> dict[str, Principal]:
    """The principals file (TOML), as ``{token_sha256: Principal}``."""
    if not path:
        raise ConfigError(
            "principals_file: required (GOVEX_PRINCIPALS_FILE or --principals-file); "
            "`make run` uses config/dev-principals.toml"
        )
    try:
        document = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"principals file {path}: {exc}") from None
    try:
        return parse_principals(document)
    except ValueError as exc:
        raise ConfigError(f"principals file {path}: {exc}") from None
