"""CSV exports of common tools → rows in Pulse's vocabulary (pure; documented in README).

Each import format is one module of this package that registers its mapping with
:func:`~pulse_ingest.domain.imports.base.csv_import` (name, title, event kinds): the
mapping turns the export's rows into raw rows of one or more kinds, which then go through
the normal :mod:`pulse_ingest.domain.normalize` path (hashing, validation). Personal
columns (names, phone numbers, company names, deal names) are never read; e-mail
addresses are only used as contact identifiers, which ingest hashes.

Event ids are stable per source object (``google_ads:<campaign>:<day>``,
``stripe:<subscription>:start`` …): re-importing a corrected export replaces the rows
in ClickHouse instead of adding new ones, and an identical re-import is a duplicate.

Adding a format: a new module here (one ``@csv_import(...)`` mapping function) and its
name in :data:`VENDORS`.
"""

from __future__ import annotations

import importlib

from pulse_ingest.domain.imports.base import (
    IMPORTS,
    CsvImport,
    MappedRows,
    MappingError,
    Row,
    RowProblem,
    csv_import,
    map_export,
)

#: The vendor modules, imported (so registered) in this order: the order in which
#: ``pulse ingest sources`` lists them and errors name them.
VENDORS: tuple[str, ...] = (
    "google_ads", "linkedin_ads", "hubspot_contacts", "hubspot_deals", "stripe_subscriptions",
    "sendgrid_stats", "mailchimp_campaigns",
)
for _vendor in VENDORS:
    importlib.import_module(f"{__name__}.{_vendor}")

__all__ = [
    "IMPORTS", "VENDORS", "CsvImport", "MappedRows", "MappingError", "Row", "RowProblem",
    "csv_import", "map_export",
]
