"""The learning loop's jobs (mine, retrain, evaluate, promote, report, watch), the rollback rule and the freeze."""
