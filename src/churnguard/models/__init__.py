"""Churn models. Each follows the scikit-learn estimator contract of :mod:`~churnguard.models.base`
(checked by :mod:`~churnguard.models.checks`); :mod:`~churnguard.models.catalog` is the one list
of the kinds, by name."""
