"""Training: tasks, batches from the cache, the Lightning module and the run folder.

``facelab.train(...)`` is the public training function, but Python binds the name
``facelab.train`` to this package as soon as it is imported. So the package itself is
made callable and forwards to :func:`facelab.train.engine.train`.
"""

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from .engine import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
