"""The loop around an answer: who gets which variant, what was shown, how clients reacted.

`assignment` (control group and experiment arms, by hash), `exposures` (the record of each
answer), `reactions` (suppression, snooze and fatigue state in Redis).
"""
