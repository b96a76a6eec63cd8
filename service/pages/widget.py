"""The cart widget's files: `/widget.js` (latest) and `/widget/<version>/widget.js` (immutable, with SRI).

The texts (static/widget/texts.json) are put into the script once, at import, where it says
`{"__TEXTS__": true}`: one file to translate, and the bytes served never change for a version, so
their SHA-384 (published at /widget/integrity.json) can be pinned in the shop's
`<script integrity=...>`. Both files carry `Access-Control-Allow-Origin: *`, which a
`crossorigin="anonymous"` script tag with `integrity` needs on another origin.
"""
from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, Response, abort, jsonify

WIDGET_VERSION = "1.0.0"
STATIC = Path(__file__).resolve().parent / "static" / "widget"
_PLACEHOLDER = '{"__TEXTS__": true}'

widget = Blueprint("widget", __name__)


@lru_cache(maxsize=1)
def widget_script() -> bytes:
    """widget.js as served: the texts of texts.json in place of the placeholder."""
    source = (STATIC / "widget.js").read_text(encoding="utf-8")
    texts = json.dumps(json.loads((STATIC / "texts.json").read_text(encoding="utf-8")), ensure_ascii=False)
    assert _PLACEHOLDER in source, "widget.js lost its texts placeholder"
    return source.replace(_PLACEHOLDER, texts).encode("utf-8")


def integrity() -> str:
    """The SRI hash of the served widget.js."""
    return "sha384-" + base64.b64encode(hashlib.sha384(widget_script()).digest()).decode("ascii")


def _asset(body: bytes, mimetype: str, immutable: bool) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable" if immutable else "public, max-age=300"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _css() -> bytes:
    return (STATIC / "widget.css").read_bytes()


@widget.get("/widget.js")
def latest_script() -> Response:
    return _asset(widget_script(), "text/javascript", immutable=False)


@widget.get("/widget.css")
def latest_css() -> Response:
    return _asset(_css(), "text/css", immutable=False)


@widget.get("/widget/<version>/widget.js")
def versioned_script(version: str) -> Response:
    if version != WIDGET_VERSION:
        abort(404)
    return _asset(widget_script(), "text/javascript", immutable=True)


@widget.get("/widget/<version>/widget.css")
def versioned_css(version: str) -> Response:
    if version != WIDGET_VERSION:
        abort(404)
    return _asset(_css(), "text/css", immutable=True)


@widget.get("/widget/integrity.json")
def widget_integrity() -> Response:
    return jsonify({"version": WIDGET_VERSION, "url": f"/widget/{WIDGET_VERSION}/widget.js",
                    "integrity": integrity(), "crossorigin": "anonymous"})
