"""Features: the feature sets (``conf/features``), their scaling (``conf/scaling``) and the
feature space a study clusters in."""
