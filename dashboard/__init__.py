"""The face3d dashboard (Plotly Dash): upload faces, depth maps, 3D models, comparisons.

Build it with :func:`dashboard.app.create_app`; serve it with ``python -m dashboard``.
"""
