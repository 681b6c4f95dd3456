"""Read-only queries and the read shapes the API and the console return."""
