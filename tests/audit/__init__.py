"""`make audit`: the trained model's answers, read through the real service and checked against
facts derived from the data (run.py), rule by rule (checks.py)."""
