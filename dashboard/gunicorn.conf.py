"""gunicorn settings for the face3d dashboard: ``gunicorn -c dashboard/gunicorn.conf.py dashboard.wsgi:server``.

Command-line options (``--workers``, ``--threads``, ``--bind``) still win over these. What the
app enforces under any server is in :mod:`dashboard.request_limits`: 413 over the request limit,
and a client that sends its request too slowly (``FACE3D_READ_TIMEOUT_S``) is disconnected, its
headers timed by the worker class below (gunicorn does not time them itself).
"""

# This machine only, unless --bind says otherwise (docs/deployment.md).
bind = ["127.0.0.1:8000"]
# Threads per worker process: requests wait on I/O and on the depth job queue, not on the CPU.
threads = 8
# gunicorn's gthread worker, with a deadline for each request's headers.
worker_class = "dashboard.gunicorn_worker.DeadlineThreadWorker"
# A worker whose main loop is stuck this long is killed and replaced (gthread workers keep
# beating while their threads serve long requests, e.g. a large 3D download).
timeout = 120
# On SIGTERM / SIGHUP, requests in progress get this long to finish.
graceful_timeout = 30
# An idle kept-alive connection is closed after this many seconds (it holds no thread).
keepalive = 5
# Request line and headers: gunicorn's bounds, stated here; fewer header fields (no face3d request comes close).
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
# No control socket under $HOME (gunicorn >= 25.1 makes one by default): face3d writes nothing
# outside its cache folder.
control_socket_disable = True
