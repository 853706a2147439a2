"""The payment API's HTTP face (FastAPI): its routers, schemas and response rendering, and the
app assembled from them on the shared HTTP toolkit (:mod:`steadypay.http`).

- :mod:`~steadypay.api.app` — ``api_app``: the ASGI app, assembled from the routers.
- :mod:`~steadypay.api.container` — ``Container``: the long-lived objects of one API process,
  built by :mod:`steadypay.bootstrap.api`.
- :mod:`~steadypay.api.deps` — FastAPI dependencies: the container, the principal, the key.
- :mod:`~steadypay.api.responses` — use-case results as HTTP responses, and the renderer whose
  output the ledger stores for replays.
- :mod:`~steadypay.api.schemas` — request and response shapes, serialisers of domain objects.
- :mod:`~steadypay.api.routes` — the routers, one per resource.

An entrypoint: nothing is re-exported here, so importing a submodule does not import the routes
(and FastAPI with them). Import from the modules: ``steadypay.api.app.api_app``,
``steadypay.api.container.Container``.
"""

__all__: list[str] = []
