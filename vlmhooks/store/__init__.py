"""The database: engines, migrations, tables, write records and the batch that applies them."""
