"""WSGI entry point for a production server, e.g. ``gunicorn -w 2 --threads 8 dashboard.wsgi:server``.

Each worker process loads the depth model once (on its first job); job state lives in the
shared cache folder, so any worker can report on and cancel any job.
"""

from __future__ import annotations

import logging

from dashboard.app import create_app

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

app = create_app()
server = app.server
