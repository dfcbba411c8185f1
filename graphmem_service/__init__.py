"""The HTTP query service: a Starlette app over the query engine, started by `graphmem serve`."""

from graphmem_service.app import create_app

__all__ = ["create_app"]
