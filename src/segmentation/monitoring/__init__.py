"""Monitoring: drift of new customers against a model's training data. drift.py holds the
statistics and the training reference a model keeps (the study writes it, so it sits below the
study); check.py is ``make drift`` (it scores the batch, so it sits above serving)."""
