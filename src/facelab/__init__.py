"""facelab: train convolutional networks on faces, then take them apart.

Everything the CLI does is a function here, callable from a notebook just as well::

    import facelab
    facelab.data_info(facelab.open_spec("synth:500"))
    facelab.train(spec="synth:2000", task="attr", attrs=["Smiling"], epochs=3, out="runs/smile")
"""

from importlib import import_module

__version__ = "0.1.0"

_PUBLIC = {
    "open_spec": "facelab.data.spec",
    "data_info": "facelab.data.info",
    "build_cache": "facelab.data.cache",
    "FaceCache": "facelab.data.cache",
    "SynthConfig": "facelab.data.synth",
    "synth_faceset": "facelab.data.synth",
    "write_synth_folder": "facelab.data.synth_export",
    "build_model": "facelab.models",
    "list_models": "facelab.models",
    "TrainConfig": "facelab.training.config",
    "DataSettings": "facelab.training.sections",
    "ModelSettings": "facelab.training.sections",
    "OptimSettings": "facelab.training.sections",
    "RuntimeSettings": "facelab.training.sections",
    "FaceDataset": "facelab.training.dataset",
    "load_trained": "facelab.run",
    "Run": "facelab.run",
    "evaluate": "facelab.run",
    "validate_synth": "facelab.probes.synth_validity",
    "inversion": "facelab.probes.inversion",
    "layers": "facelab.probes.activations",
    "activations": "facelab.probes.activations",
    "rgb": "facelab.probes.activations",
    "filters": "facelab.probes.activations",
    "dream": "facelab.probes.dream",
    "edit": "facelab.probes.dream",
    "Regularisers": "facelab.probes.ascent",
    "cam": "facelab.probes.explain",
    "cam_score": "facelab.probes.attribution_scores",
    "predict": "facelab.probes.explain",
    "audit": "facelab.probes.audit",
    "compare": "facelab.probes.audit",
    "bench_cam": "facelab.bench",
    "sweep": "facelab.keypoints.sweep",
    "export": "facelab.model_export",
    "landmarks": "facelab.keypoints.photos",
    "demo": "facelab.demo_run",
    "study": "facelab.studies",
    "bench_data": "facelab.bench",
    "bench_train": "facelab.bench",
    "runtime": "facelab.hardware",
    "Runtime": "facelab.hardware",
    "train": "facelab.training.engine",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str):
    """Import on first use, so ``facelab data info`` starts without loading torch."""
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    if name.endswith("_study"):  # every registered study's function: facelab.NAME_study(...)
        from .studies.registry import get_study, study_names

        if name.removesuffix("_study") in study_names():
            return get_study(name.removesuffix("_study")).run
    raise AttributeError(f"module 'facelab' has no attribute {name!r}")
