"""/docs/interactive: Swagger UI on this service's own OpenAPI document, with no CDN.

Swagger UI's files come from the `flask-swagger-ui` package (pinned in setup.cfg; its `dist/`
is swagger-ui-dist of the same version, with its Apache-2.0 LICENSE, served at
/docs/vendor/swagger-ui/LICENSE). Updating it is updating that pin (`make install`). The page has
no inline script: our `swagger-init.js` starts it. /docs stays the plain page (problem types live
there, and every problem's `type` points into it).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from flask import Blueprint, Response, abort, render_template, send_from_directory

api_docs = Blueprint("api_docs", __name__, template_folder="templates", static_folder="static/docs",
                     static_url_path="/docs/static")

#: Swagger UI's files we serve (nothing else of the package directory).
SWAGGER_FILES = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "VERSION"})
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")


def swagger_dist() -> Path:
    spec = importlib.util.find_spec("flask_swagger_ui")
    assert spec is not None and spec.submodule_search_locations, "flask-swagger-ui is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "dist"


def swagger_version() -> str:
    return (swagger_dist() / "VERSION").read_text().strip()


@api_docs.get("/docs/interactive")
def interactive() -> Response:
    response = Response(render_template("api_docs.html", version=swagger_version()), mimetype="text/html")
    response.headers["Content-Security-Policy"] = CSP
    return response


@api_docs.get("/docs/vendor/swagger-ui/<name>")
def swagger_file(name: str) -> Response:
    if name not in SWAGGER_FILES:
        abort(404)
    response = send_from_directory(swagger_dist(), name, max_age=86_400)
    if name in ("LICENSE", "VERSION"):
        response.mimetype = "text/plain"
    return response
