"""Promotion: the quality gate and the ``champion`` and ``previous`` aliases (promote.py), the
challenger's segments aligned to the champion's (alignment.py) and the customers who would
change segment (migration.py)."""
