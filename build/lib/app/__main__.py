"""`python -m app`: serve with uvicorn on HOST:PORT; exit 1 when the model cannot be served."""

from __future__ import annotations

import logging
import os
import sys

import uvicorn

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from app.config import Settings  # noqa: E402
from app.service.main import create_app  # noqa: E402
from app.service.server import DrainingServer, server_config  # noqa: E402


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server: uvicorn.Server | None = None

    def stop() -> None:
        server.should_exit = True

    app = create_app(settings, on_fatal=stop)
    server = DrainingServer(
        server_config(app, settings),
        settings,
        drain=lambda: setattr(app.state, "draining", True),
        busy=lambda: app.state.in_flight.count,
    )
    server.run()
    if app.state.fatal:
        sys.exit(1)


if __name__ == "__main__":
    main()
