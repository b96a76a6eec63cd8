"""What suggestions earn: the incremental effect against the control group, from stored events.

estimator (pure statistics) · attribution (purchases to exposures, pure) · report (reads the
event store) · plot (a PNG of a report) · api (GET /v1/reports/effect) · cli (`python -m service
report`) · store (the process's EventStore for the report).
"""
