"""`revsearch serve`: the REST API and the web page (see `revsearch.serve.app`).

`app` has the routes, `service` the work behind them (over `revsearch.RevSearch` and its
`Query` objects), `models` the response bodies, `middleware` the upload limit and
security headers, `thumbnails` the thumbnails.
"""

from revsearch.serve.app import create_app, serve
from revsearch.serve.thumbnails import render_thumbnail

__all__ = ["create_app", "render_thumbnail", "serve"]
