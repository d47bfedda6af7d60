"""comuna-table: an offline voting table's device (see `comuna_table.store` and docs/offline-tables.md)."""
