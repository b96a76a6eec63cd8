"""`python -m service`: the same app on HOST:PORT with Werkzeug's server, for development.
`python -m service report --from ... --to ...`: the effect report (service/effect/cli.py)."""
from __future__ import annotations

import sys

from service.app import create_app
from service.config import Settings, apply_serving_defaults


def main() -> None:
    if sys.argv[1:2] == ["report"]:
        from service.effect.cli import main as report

        raise SystemExit(report(sys.argv[2:]))
    settings = Settings.from_env()
    apply_serving_defaults()
    app = create_app(settings)
    app.extensions["crm"].arms.ensure_started()
    app.extensions["crm"].drain.ensure_started()  # one process: a thread, whatever EXPOSURE_WRITER says
    app.run(host=settings.host, port=settings.port, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
