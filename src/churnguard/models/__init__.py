"""Churn models. Each follows the scikit-learn estimator contract described in DESIGN.md."""
