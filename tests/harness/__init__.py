"""Test harness: real processes driven over HTTP, shared by the reliability, load, scale-out and browser tests.

* :mod:`~tests.harness.paths`: where the repository and the read-only ``../shared`` material are;
* :mod:`~tests.harness.processes`: child processes (own process group, log file, stop / kill, peak
  memory), the one free-port function and the child environment;
* :mod:`~tests.harness.servers`: a dashboard web server (``python -m dashboard``, the fake-network
  app or gunicorn) on a free 127.0.0.1 port, and ``redis-server``;
* :mod:`~tests.harness.dash_client`: the dashboard's callbacks over ``/_dash-update-component``,
  like the browser calls them (over HTTP, or in process through Flask's test client);
* :mod:`~tests.harness.flows`: what a user does (upload, generate depth and wait for it, view the
  depth map and the 3D model, move a slider, compare), each written once;
* :mod:`~tests.harness.users`: simulated users running those flows in threads, with latency stats;
* :mod:`~tests.harness.hostile_files`: hostile and odd-but-valid files and names;
* child programs, run as ``python -m tests.harness.<name>``: :mod:`~tests.harness.fake_network_server`,
  :mod:`~tests.harness.cli_peak_rss`, :mod:`~tests.harness.cache_disk_faults`,
  :mod:`~tests.harness.readonly_cache_server`.

Importing this package imports nothing heavy: child programs start fast.
"""
