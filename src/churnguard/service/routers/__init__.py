"""One router per resource: events, users, score, models, campaigns, health."""
