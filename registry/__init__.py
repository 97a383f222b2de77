"""Contract registry: model, store, documents and the /registry REST API."""
