"""churnguard: predict, explain and prevent customer churn in online shops."""

__version__ = "0.1.0"
