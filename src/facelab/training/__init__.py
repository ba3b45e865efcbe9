"""Training: tasks, batches from the cache, the run format (config, folder, data preparation) and the Lightning loop.

The public training function is ``facelab.train`` (:func:`facelab.training.engine.train`).
"""
