"""Pure ingest domain code: normalisation, validation, readers, CSV mappings, generator."""
