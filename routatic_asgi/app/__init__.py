"""The assembled gateway: `build_app` (assembly.py) and `RoutaticApp` (gateway.py).

assembly.py is the only module that knows the order of the layers; gateway.py dispatches
the server's paths; discovery.py, reset.py and paths.py answer its own endpoints.
"""

from __future__ import annotations

from routatic_asgi.app.assembly import build_app
from routatic_asgi.app.gateway import RoutaticApp

__all__ = ["RoutaticApp", "build_app"]
