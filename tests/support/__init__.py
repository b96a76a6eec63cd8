"""Plain helpers the tests share, written once (no tests and no fixtures here; fixtures live in
the conftest.py files): real processes (`processes`, `service_process`), the small shop
(`factories`), the model doubles (`service_model_double`, `reliability_doubles`) and the
reliability harness's pieces (`reliability_harness`).

Importable as `support` because pytest puts tests/ on sys.path for tests/conftest.py. The model
doubles are logged to MLflow with this whole package as their code, so a service process
imports them by the same names.
"""
