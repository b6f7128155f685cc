"""ClickHouse access: :func:`open_store` picks the server or the embedded backend."""

from __future__ import annotations

from pulse_shared.settings import PulseSettings, common_settings
from pulse_shared.store.base import (
    ReadOnlyStoreError,
    Row,
    Store,
    StoreDataError,
    StoreError,
    StoreUnavailable,
)


def open_store(
    settings: PulseSettings | None = None,
    *,
    readonly: bool = False,
    user: str | None = None,
    password: str | None = None,
) -> Store:
    """Server store when ``PULSE_CLICKHOUSE_URL`` is set, else embedded chDB."""
    settings = settings or common_settings()
    if settings.clickhouse_url:
        from pulse_shared.store.server import ServerStore

        return ServerStore(
            settings.clickhouse_url,
            user=user or settings.clickhouse_user,
            password=password
            if password is not None
            else settings.clickhouse_password.get_secret_value(),
            database=settings.clickhouse_database,
            readonly=readonly,
            cluster=settings.clickhouse_cluster,
        )
    from pulse_shared.store.embedded import EmbeddedStore

    return EmbeddedStore(settings.data_dir, readonly=readonly)


__all__ = [
    "ReadOnlyStoreError",
    "Row",
    "Store",
    "StoreDataError",
    "StoreError",
    "StoreUnavailable",
    "open_store",
]
