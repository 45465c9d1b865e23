"""Evaluation and research code: datasets, metrics, experiments, threshold fitting.

Product code (everything outside this package, except the CLI's `eval` and
`calibrate` commands) never imports it; `tests/test_layout.py` checks that.
"""
