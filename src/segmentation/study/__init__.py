"""The study: the Optuna objective and its budget, the study storage, worker processes, the
artifact pool behind the trials, and the sweep that ties them to MLflow runs."""
