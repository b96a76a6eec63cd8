"""`python -m service`: the same app on HOST:PORT with Werkzeug's server, for development."""
from __future__ import annotations

from service.app import create_app
from service.config import Settings, apply_serving_defaults


def main() -> None:
    settings = Settings.from_env()
    apply_serving_defaults()
    app = create_app(settings)
    app.extensions["crm"].arms.ensure_started()
    app.extensions["crm"].drain.ensure_started()
    app.run(host=settings.host, port=settings.port, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
