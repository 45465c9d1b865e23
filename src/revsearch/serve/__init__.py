"""`revsearch serve`: the REST API and the web page (see `revsearch.serve.app`)."""

from revsearch.serve.app import create_app, render_thumbnail, serve

__all__ = ["create_app", "render_thumbnail", "serve"]
