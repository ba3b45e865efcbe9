"""``python -m facelab`` is the ``facelab`` command."""

from .cli import main

main()
