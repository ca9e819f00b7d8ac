"""Reproducible studies of spectralwatch's metrics against measured accuracy (see docs/study.md).

Not part of the installed package: run from the repository root, e.g. ``python -m studies``.
"""
