"""The read side: PostgreSQL read models fed by catch-up subscriptions."""
