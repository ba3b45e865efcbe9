"""Training: tasks, batches from the cache, the Lightning module and the run folder."""
