"""`steadypay fraud-service`: the fraud service in its own process, until Ctrl-C."""

from __future__ import annotations

import uvicorn
from rich.console import Console

from steadypay import __version__
from steadypay.bootstrap import configure_logging
from steadypay.bootstrap.fraud import create_fraud_app
from steadypay.config import Settings


def run_fraud_service(settings: Settings, host: str, port: int) -> None:
    """Serve the fraud service on ``host:port`` (one process; run more behind a balancer).

    Needs ``STEADYPAY_DATABASE_URL`` (`steadypay up` passes its database to its children) and
    an internal service key (``STEADYPAY_INTERNAL_KEYS``, or ``STEADYPAY_ADMIN_KEY`` outside
    production: callers must send it as bearer), on a database migrated to 0003 or later
    (`steadypay up` and `steadypay migrate` do that); with ``STEADYPAY_REDIS_URL`` the
    velocity history lives in Redis, PostgreSQL answering while Redis is down.
    """
    if settings.database_url is None:
        raise SystemExit("STEADYPAY_DATABASE_URL is required to run the fraud service")
    if not settings.accepted_internal_keys():
        raise SystemExit(
            "the fraud service needs STEADYPAY_INTERNAL_KEYS (or, outside production, "
            "STEADYPAY_ADMIN_KEY, from which its key is derived)"
        )
    configure_logging(settings, "fraud")
    base = f"http://{host}:{port}"
    velocity = "Redis, PostgreSQL while Redis is down" if settings.redis_url else "PostgreSQL"
    Console(stderr=True).print(
        f"[bold]steadypay fraud service {__version__}[/]\n"
        f"  Check      POST {base}/check-fraud\n"
        f"  Health     {base}/health/ready\n"
        f"  Docs       {base}/docs\n"
        f"  Velocity   {velocity}"
    )
    uvicorn.run(
        create_fraud_app(settings),
        host=host,
        port=port,
        log_level=settings.log_level,
        log_config=None,  # ours (configure_logging): JSON lines, redaction
        access_log=False,
        server_header=False,  # no 'Server: uvicorn' (docs/security.md)
        timeout_graceful_shutdown=10,
    )
