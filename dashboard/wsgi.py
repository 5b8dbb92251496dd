"""WSGI entry point for a production server, e.g. ``gunicorn -w 2 --threads 8 dashboard.wsgi:server``.

gunicorn binds to 127.0.0.1:8000 unless ``--bind`` says otherwise (see docs/deployment.md).

Without ``FACE3D_REDIS_URL`` each worker process loads the default depth model once, in the
background right after it starts (not with gunicorn's ``--preload``, whose master would load it
before forking), and job state lives in the shared cache folder, so the workers of one machine
share the cache and any worker can report on and cancel any job. With ``FACE3D_REDIS_URL`` set,
results and job state live in Redis and jobs run on Celery workers (``celery -A
dashboard.celery_app worker``, which load the network at their start in the same way): the web
workers never load a network, and several machines can serve the same users.
"""

from __future__ import annotations

import logging

from dashboard.app import create_app

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

app = create_app(warm_up=True)
server = app.server
