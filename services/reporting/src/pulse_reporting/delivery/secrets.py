"""Subscriptions' secrets at rest: e-mail addresses and webhook URLs are stored encrypted
(Fernet: AES-128-CBC + HMAC-SHA256, authenticated), an e-mail address also as its salted
hash (``contact_id``, :func:`pulse_shared.privacy.contact_hash`) so that
``pulse privacy erase --contact ADDRESS`` finds its subscriptions and delivery log rows.

Keys (``PULSE_REPORTING_DELIVERY_KEY``): one or more Fernet keys, comma-separated. The
first encrypts, every one decrypts (:class:`~cryptography.fernet.MultiFernet`), so a key
is rotated by putting a new one first, re-encrypting (``pulse report subscriptions
--reencrypt``) and then dropping the old one.

Without a configured key, the embedded store (a single machine, the demo) uses a random
key created once beside its data, readable by its owner only (as the embedded PII salt);
against a ClickHouse server nothing secret is stored or read without a real key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from pulse_reporting.settings import ReportingSettings
from pulse_shared.config_checks import ConfigurationError, check_secret
from pulse_shared.settings import PulseSettings, common_settings

KEY_SETTING = "PULSE_REPORTING_DELIVERY_KEY"
KEY_HINT = ("generate one: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'")
#: The embedded store's key file (beside ``.pii-salt``, in ``PULSE_DATA_DIR``).
LOCAL_KEY_FILE = ".delivery-key"
#: Stored values are tagged, so a value is never taken for a token by accident (and a
#: future scheme can be told apart).
TOKEN_PREFIX = "fernet:"


class SecretUnreadable(ValueError):
    """A stored value none of the configured keys decrypts (a key was dropped too soon)."""


def parse_keys(value: str) -> list[Fernet]:
    """The Fernet keys of a ``PULSE_REPORTING_DELIVERY_KEY`` value, first = current."""
    check_secret(KEY_SETTING, value, hint=KEY_HINT)
    parts = [part.strip() for part in value.replace("\n", ",").split(",") if part.strip()]
    keys = []
    for number, part in enumerate(parts, start=1):
        try:
            keys.append(Fernet(part.encode()))
        except ValueError:
            raise ConfigurationError(
                f"{KEY_SETTING}: key {number} of {len(parts)} is not a Fernet key "
                f"(32 url-safe base64 bytes; {KEY_HINT})") from None
    return keys


def local_key(data_dir: Path) -> str:
    """The embedded store's delivery key: random, created once, readable by the owner only."""
    path = data_dir / LOCAL_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
    return path.read_text().strip()


def delivery_keys(settings: ReportingSettings, common: PulseSettings | None = None) -> list[Fernet]:
    """The configured keys; the embedded store's local key without; else a refusal."""
    configured = settings.delivery_key.get_secret_value()
    if configured.strip():
        return parse_keys(configured)
    common = common or common_settings()
    if common.embedded:
        return parse_keys(local_key(common.data_dir))
    raise ConfigurationError(
        f"{KEY_SETTING} is not set: e-mail addresses and webhook URLs of report "
        f"subscriptions are stored encrypted with it on a ClickHouse server ({KEY_HINT})")


class SubscriptionVault:
    """Seals and opens a subscription's secrets; hashes its e-mail address.

    ``keys`` and ``salt`` are looked up on first use (so listing role subscriptions or
    delivering to users never needs the PII salt, and a store without secret-bearing
    subscriptions never needs a key)."""

    def __init__(
        self, keys: Callable[[], Sequence[Fernet]], salt: Callable[[], str] | None = None,
    ) -> None:
        self._keys = keys
        self._salt = salt
        self._fernet: MultiFernet | None = None

    @classmethod
    def of(cls, settings: ReportingSettings, salt: Callable[[], str] | None = None,
           common: PulseSettings | None = None) -> SubscriptionVault:
        return cls(lambda: delivery_keys(settings, common), salt)

    @property
    def fernet(self) -> MultiFernet:
        if self._fernet is None:
            self._fernet = MultiFernet(list(self._keys()))
        return self._fernet

    def seal(self, plain: str) -> str:
        """``plain`` encrypted with the current key ('' stays '': nothing to hide)."""
        if not plain:
            return ""
        return TOKEN_PREFIX + self.fernet.encrypt(plain.encode()).decode()

    def open(self, stored: str) -> str:
        if not stored:
            return ""
        if not stored.startswith(TOKEN_PREFIX):
            raise SecretUnreadable("not an encrypted value")
        try:
            return self.fernet.decrypt(stored.removeprefix(TOKEN_PREFIX).encode()).decode()
        except InvalidToken:
            raise SecretUnreadable(
                f"none of the {KEY_SETTING} keys decrypts it (was its key removed?)") from None

    def reseal(self, stored: str) -> str:
        """``stored`` encrypted again with the current (first) key."""
        if not stored:
            return ""
        try:
            token = stored.removeprefix(TOKEN_PREFIX).encode()
            return TOKEN_PREFIX + self.fernet.rotate(token).decode()
        except InvalidToken:
            raise SecretUnreadable(
                f"none of the {KEY_SETTING} keys decrypts it (was its key removed?)") from None

    def contact_id(self, address: str) -> str:
        """The ``contact_id`` of an e-mail address (what erasure looks for)."""
        from pulse_shared.privacy import contact_hash

        if self._salt is None:
            raise ConfigurationError("no PII salt to hash the subscription's e-mail address")
        return contact_hash(address, self._salt())



def pii_salt() -> str:
    """The salt ``pulse privacy erase --contact`` hashes an address with (ingest's
    ``PULSE_INGEST_PII_SALT``; the embedded store's local salt by default), so erasing an
    address finds its subscriptions. Only the ``pulse`` CLI writes subscriptions and one-off
    deliveries, and it has that salt; the service only reads (and needs no salt)."""
    from pulse_cli.privacy import contact_salt

    return contact_salt()
