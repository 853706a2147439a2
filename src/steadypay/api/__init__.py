"""The HTTP API (FastAPI): routers, schemas, error mapping, app factory."""
