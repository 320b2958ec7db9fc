"""From risk to action: uplift, value, allocation, control groups, recommendations, messages, delivery, measurement."""
