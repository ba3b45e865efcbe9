"""Networks by name: ``build_model("darknet64", n_outputs=2)``; ``list_models()`` for the table."""

from .registry import ARCHS, build_model, conv_layers, list_models, load_weights_file

__all__ = ["ARCHS", "build_model", "conv_layers", "list_models", "load_weights_file"]
