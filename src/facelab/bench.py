"""``facelab bench``: speed against a baseline measured in the same process."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from .data.cache import build_cache
from .data.spec import open_spec
from .errors import FacelabError
from .hardware import Runtime, RuntimeDescription, native_bf16, probe_runtime
from .hardware import runtime as resolved_runtime
from .results import Summary, plain
from .training.batches import CachedItems, loader, to_input


@dataclass
class DataSpeed(Summary):
    """``facelab bench data``: images/s of per-epoch PIL decoding against the decode-once cache."""

    baseline_img_s: float
    cache_img_s: float
    ratio: float
    runtime: RuntimeDescription
    cache_build_s: float
    n_images: int
    size: int
    data: str


@dataclass
class TrainSpeed(Summary):
    """One network's training speed: the compute step in each precision, and the real loop against the chosen one."""

    fp32_img_s: float
    bf16_img_s: float
    bf16_emulated: bool  # no native bf16 here: timed over fewer steps
    chosen: str
    compute_img_s: float
    loop_img_s: float
    ratio: float
    ratio_spread: list[float] | None
    ratio_windows: int


@dataclass
class CamSpeed(Summary):
    """One network's frames/s at batch 1: CAM, Grad-CAM to the hooked layer, and the notebook's full backward."""

    cam_fps: float
    gradcam_fps: float
    gradcam_full_backward_fps: float
    gradcam_speedup: float


@dataclass
class PerNet(Summary):
    """Figures per network (``ARCH@SIZE``) and the runtime they were measured on; the JSON holds each network's
    figures under its name, beside ``runtime``."""

    nets: dict[str, Any]
    runtime: RuntimeDescription
    item: ClassVar[type[Summary]] = Summary

    def to_json(self) -> dict[str, Any]:
        return {name: plain(v) for name, v in self.nets.items()} | {"runtime": self.runtime}

    @classmethod
    def from_json(cls, data: dict[str, Any]):
        return cls({k: cls.item.from_json(v) for k, v in data.items() if k != "runtime"}, data["runtime"])


@dataclass
class TrainSpeeds(PerNet):
    """``facelab bench train``."""

    item: ClassVar[type[Summary]] = TrainSpeed


@dataclass
class CamSpeeds(PerNet):
    """``facelab bench cam``."""

    item: ClassVar[type[Summary]] = CamSpeed


@dataclass
class ServeSpeed(Summary):
    """``facelab bench serve``: frames/s answered over HTTP against the same analysis called in the process."""

    served_fps: float
    direct_fps: float
    faces_per_frame: int
    frame: str
    model: str
    served_vs_direct: float
    runtime: RuntimeDescription


@dataclass
class TrainingMeasure(Summary):
    """One training process's settled images/s and peak resident memory (``bench scale``'s child)."""

    img_s: float | None
    peak_rss_bytes: int


@dataclass
class ScaleFigures(Summary):
    """``facelab bench scale``: memory and speed of training on many faces, in memory and streamed, and per DDP rank."""

    n_images: int
    size: int
    selection_bytes: int
    peak_rss_bytes: int
    baseline_rss_bytes: int
    in_memory_img_s: float | None
    streamed_img_s: float | None
    streamed_peak_rss_bytes: int
    ddp: dict[str, Any]
    runtime: RuntimeDescription


def _timed_pass(batches, n_limit: int) -> float:
    """Images per second over one pass of ``batches`` (each yields (x, ...))."""
    seen, t = 0, time.perf_counter()
    for batch in batches:
        seen += len(batch[0])
        if seen >= n_limit:
            break
    return seen / (time.perf_counter() - t)


def _baseline_loader(fs, rows: np.ndarray, size: int, batch: int):
    """What notebooks do: PIL decode + torchvision transforms v2, per image, every epoch."""
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision.transforms import v2

    tf = v2.Compose([v2.PILToTensor(), v2.Resize(size, antialias=True), v2.CenterCrop(size), v2.ToDtype(torch.float32, scale=True)])

    class PilFaces(Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, k):
            with Image.open(fs.paths[rows[k]]) as im:
                return tf(im.convert("RGB")), 0

    return DataLoader(PilFaces(), batch_size=batch, shuffle=True, num_workers=0)


def _file_backed(spec: str, tmp: Path):
    """File-based data for the baseline; synthetic faces are first written as JPEG files."""
    from .data.synth import SynthFaceSet
    from .data.synth_export import write_synth_folder

    fs = open_spec(spec)
    if not isinstance(fs, SynthFaceSet):
        return fs, spec

    folder = write_synth_folder(fs, tmp / "synth", size=178, quiet=True, ext="jpg")
    return open_spec(f"celeba:{folder}"), f"celeba:{folder}"


def bench_data(
    spec: str, size: int = 64, n: int = 2000, batch: int = 128, quiet: bool = False, runtime: Runtime | None = None
) -> DataSpeed:
    """Images/s of (a) per-epoch PIL decode + transforms and (b) the decode-once cache, one epoch each."""
    with tempfile.TemporaryDirectory() as tmp:
        fs, file_spec = _file_backed(spec, Path(tmp))
        if not hasattr(fs, "paths"):
            raise FacelabError(f"{spec}: bench data needs image files")
        rows = np.arange(min(n, len(fs)))
        fs = fs.take(rows)
        baseline = _timed_pass(_baseline_loader(fs, np.arange(len(fs)), size, batch), len(fs))
        t = time.perf_counter()
        cache = build_cache(fs, (size, size), Path(tmp) / "cache", quiet=quiet)
        build_s = time.perf_counter() - t
        items = CachedItems(cache.images, np.arange(len(fs)), torch.zeros(len(fs)))
        batches = ((to_input(x, 3, False), y) for x, y, _ in loader(items, batch, True, 0))
        cached = _timed_pass(batches, len(fs))
    described = (runtime or probe_runtime()).describe()
    return DataSpeed(
        baseline, cached, cached / baseline, described, build_s, len(fs), size, file_spec if spec.startswith("synth") else spec
    )


WARMUP = 8  # steps at least before timing: oneDNN picks and caches its bf16 kernels over the first few
WINDOW = 5  # steps per timing window


def settled_img_s(step_s: list[float], batch: int, warmup: int = WARMUP) -> float:
    """Images/s from per-step times: the warm-up left out (at least WARMUP steps, and until three successive steps
    agree within 10%), then the median over windows of WINDOW steps, so one slow window does not set the figure."""
    start = min(warmup, max(0, len(step_s) - 1))
    while start + 3 <= len(step_s) - WINDOW and max(step_s[start : start + 3]) > 1.1 * min(step_s[start : start + 3]):
        start += 1
    timed = step_s[start:]
    windows = [float(np.mean(timed[i : i + WINDOW])) for i in range(0, len(timed) - WINDOW + 1, WINDOW)] or [float(np.mean(timed))]
    return batch / float(np.median(windows))


class ComputeStep:
    """A training step on random tensors already in memory, in ``rt``'s precision, with the optimiser ``facelab train``
    gives ``arch`` by default: the ceiling for the real loop. Calling it runs one step and returns its seconds."""

    def __init__(self, arch: str, size: int, batch: int, rt: Runtime):
        from .models import build_model
        from .training.config import TrainConfig
        from .training.module import optimizer_for

        self.rt = rt
        self.model = rt.prepare(build_model(arch, 2).train())
        self.opt = optimizer_for(self.model.parameters(), TrainConfig(arch=arch, attrs=["Smiling", "Male"]).optim)
        self.x = rt.input(torch.randn(batch, 3, size, size))
        self.y = torch.randint(0, 2, (batch, 2), device=rt.device).float()

    def warm(self, most: int = 60) -> None:
        """Steps until three in a row agree within 10% (at least WARMUP, at most ``most``): oneDNN builds its kernels
        and the heap grows over the first steps, for longer on some CPUs than others (an AVX2-only EPYC still ran 2.4x
        slower than settled after 14 steps of darknet64@64). Timed cold, the step looked slower than the loop around it."""
        times = [self() for _ in range(WARMUP)]
        while len(times) < most and max(times[-3:]) > 1.1 * min(times[-3:]):
            times.append(self())

    def __call__(self) -> float:
        t = time.perf_counter()
        with self.rt.autocast():
            loss = torch.nn.functional.binary_cross_entropy_with_logits(self.model(self.x).float(), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        _sync(self.rt)
        return time.perf_counter() - t


def _compute_img_s(arch: str, size: int, batch: int, steps: int, rt: Runtime, warmup: int = WARMUP) -> float:
    """The compute step's settled speed. ``warmup`` 1 for emulated bf16, whose steps are too slow to spend on
    settling (and have nothing to settle)."""
    step = ComputeStep(arch, size, batch, rt)
    if warmup > 1:
        step.warm()
    else:
        step()
    return settled_img_s([step() for _ in range(steps)], batch, 0)


def _sync(rt: Runtime) -> None:
    if rt.device == "cuda":
        torch.cuda.synchronize()


def _loop_and_compute_img_s(arch: str, size: int, batch: int, steps: int, out: Path, rt: Runtime) -> tuple[float, float, list[float]]:
    """The real ``facelab.train`` loop (cache, augmentation, Lightning) and the compute step, interleaved: after each
    batch of the loop, one compute step of a copy of the network, whose time is taken out of the loop's interval.
    Both sides see the same moments of the machine, so a drifting speed (a noisy neighbour, a clock) cancels out of
    their ratio; timed separately, they differed by 5-10% run to run on a shared 2-core VM."""
    import lightning.pytorch as pl

    from .training import engine
    from .training.config import TrainConfig

    starts: list[float] = []
    compute_s: list[float] = []
    step = ComputeStep(arch, size, batch, rt)
    step.warm()  # settled before the loop starts: the loop's own warm-up is left out of its figure by settled_img_s

    class Interleaved(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch_, idx):
            starts.append(time.perf_counter())

        def on_train_batch_end(self, trainer, module, outputs, batch_, idx):
            compute_s.append(step())

    cfg = TrainConfig(
        spec=f"synth:{batch * (steps + WARMUP + 1)}",
        out=str(out / f"{arch}{size}"),
        arch=arch,
        size=str(size),
        epochs=1,
        batch=batch,
        attrs=["Smiling", "Male"],
        precision=rt.precision,
        device=rt.device,
    )
    engine.train(cfg, quiet=True, callbacks=[Interleaved()])
    # Start to start, less the interleaved compute step: data, augmentation, forward, backward, step and Lightning.
    loop_s = (np.diff(starts) - np.array(compute_s[: len(starts) - 1])).tolist()
    return settled_img_s(loop_s, batch), settled_img_s(compute_s, batch), window_ratios(loop_s, compute_s[: len(loop_s)])


def window_ratios(loop_s: list[float], compute_s: list[float]) -> list[float]:
    """The loop's speed over the compute step's, window by window of WINDOW steps after the loop's warm-up: the
    spread of the ratio over the run's repeats."""
    start = min(WARMUP, max(0, len(loop_s) - WINDOW))
    return [
        float(np.sum(compute_s[i : i + WINDOW]) / np.sum(loop_s[i : i + WINDOW])) for i in range(start, len(loop_s) - WINDOW + 1, WINDOW)
    ]


def bench_train(steps: int = 20, quiet: bool = False, runtime: Runtime | None = None) -> TrainSpeeds:
    """Per net: the pure compute step in fp32 and in bf16, which of them the policy chose, and the real loop
    (which trains in the chosen precision) against the chosen compute step.

    ``{"darknet64@64": {"fp32_img_s", "bf16_img_s", "chosen", "compute_img_s", "loop_img_s", "ratio", "ratio_spread",
    "ratio_windows"}, ...,
    "runtime": {...}}``; ``compute_img_s`` is the chosen step timed interleaved with the loop, batch by batch.
    Emulated bf16 (no native support) is timed over fewer steps: it is 5-16x slower.
    """
    chosen = runtime or resolved_runtime()
    nets = {}
    emulated = not native_bf16(chosen.device)
    with tempfile.TemporaryDirectory() as tmp:
        for arch, size, batch in (("darknet64", 64, 128), ("resnet18", 112, 64)):
            fp32 = _compute_img_s(arch, size, batch, steps, replace(chosen, precision="fp32"))
            if emulated:  # 5-16x slower (a resnet18@112 step of 64 images took 40 s on an AVX2 EPYC), so a small batch,
                # one step to settle and few timed ones: enough to show what it would cost
                bf16 = _compute_img_s(arch, size, max(8, batch // 8), max(1, steps // 10), replace(chosen, precision="bf16"), 1)
            else:
                bf16 = _compute_img_s(arch, size, batch, steps, replace(chosen, precision="bf16"))
            loop, compute, ratios = _loop_and_compute_img_s(arch, size, batch, steps, Path(tmp), chosen)
            spread = [min(ratios), max(ratios)] if ratios else None
            nets[f"{arch}@{size}"] = TrainSpeed(fp32, bf16, emulated, chosen.precision, compute, loop, loop / compute, spread, len(ratios))
    return TrainSpeeds(nets, chosen.describe())


def _per_second(step, frames: int) -> float:
    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(frames):
        step()
    return frames / (time.perf_counter() - t)


def _full_backward_gradcam(model, x, layer) -> torch.Tensor:
    """The notebook way: hooks, then ``loss.backward()`` through the whole network including parameter grads."""
    from .probes.layers import recorded

    for p in model.parameters():
        p.requires_grad_(True)
    with recorded({"l": layer.module}) as outs:
        logits = model(x)
        outs["l"].retain_grad()
        model.zero_grad()
        logits[0, 0].backward()
    a, g = outs["l"].detach(), outs["l"].grad
    for p in model.parameters():
        p.requires_grad_(False)
    return torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1))


def bench_cam(frames: int = 30, quiet: bool = False, runtime: Runtime | None = None) -> CamSpeeds:
    """Frames/s at batch 1 (map + upsampling + overlay): CAM, Grad-CAM to the hooked layer, and full-backward Grad-CAM."""
    from .models import build_model
    from .probes.cam import attribution_maps, default_layer, overlay

    torch.manual_seed(0)
    rt = runtime or probe_runtime()
    nets = {}
    for arch, size in (("darknet64", 128), ("resnet18", 224)):
        model = rt.prepare(build_model(arch, 2).eval())
        for p in model.parameters():
            p.requires_grad_(False)
        face, _ = open_spec("synth:1").load(0, (size, size))
        x = to_input(torch.from_numpy(face)[None], 3, channels_last=False)
        layer = default_layer(model)

        def mapped(method: str):
            return lambda: overlay(face, attribution_maps(model, x, method, 0, True, layer, runtime=rt)[3][0].numpy())

        def notebook():
            raw = _full_backward_gradcam(model, x, layer)
            up = torch.nn.functional.interpolate(raw[:, None], size=(size, size), mode="bilinear")[0, 0]
            overlay(face, (up / up.max().clamp_min(1e-12)).numpy())

        cam_fps, gradcam_fps, full_fps = (
            _per_second(mapped("cam"), frames),
            _per_second(mapped("gradcam"), frames),
            _per_second(notebook, frames),
        )
        nets[f"{arch}@{size}"] = CamSpeed(cam_fps, gradcam_fps, full_fps, gradcam_fps / full_fps)
    return CamSpeeds(nets, rt.describe())


def bench_serve(frames: int = 40, quiet: bool = False, runtime: Runtime | None = None) -> ServeSpeed:
    """Frames/s answered by POST /api/predict (webcam-sized JPEG, face detection, darknet64@128 CAM), against the
    same analysis called directly in the process (the HTTP + JSON + PNG cost is the difference)."""
    import io

    from fastapi.testclient import TestClient
    from PIL import Image

    from .training.config import TrainConfig
    from .training.engine import train
    from .web.analyser import Analyser, load_runs
    from .web.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        rt = runtime or probe_runtime()
        train(
            TrainConfig(spec="synth:256", out=str(run), size="128", epochs=1, batch=64, max_train_batches=1),
            quiet=True,
            runtime=rt,
        )
        from .data.synth_export import synthetic_photo

        frame = synthetic_photo(photo=(640, 480), at=(190, 100))
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, "JPEG", quality=85)
        client = TestClient(create_app([run], runtime=rt))
        post = lambda: client.post("/api/predict", files={"file": ("f.jpg", buf.getvalue(), "image/jpeg")}).raise_for_status()  # noqa: E731
        analyser = Analyser(load_runs([run], runtime=rt))
        served, direct = _per_second(post, frames), _per_second(lambda: analyser.analyse(frame), frames)
        faces = len(analyser.analyse(frame))
    return ServeSpeed(served, direct, faces, "640x480 JPEG", "darknet64@128, CAM", served / direct, rt.describe())


# ----------------------------------------------------------------------------- scale
CHILD = """import json, sys
from facelab.bench import child_training
result = child_training(json.loads(sys.argv[1]))
if result is not None:
    print("FACELAB-BENCH " + json.dumps(result.to_json()), flush=True)
"""


def child_training(settings: dict[str, Any]) -> TrainingMeasure | None:
    """In a fresh process (one ``bench scale`` starts): one training, its settled images/s and this process's peak
    resident memory; None on DDP ranks other than 0."""
    import resource

    import lightning.pytorch as pl

    from .training import engine
    from .training.config import TrainConfig

    starts: list[float] = []

    class BatchTimer(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch_, idx):
            starts.append(time.perf_counter())

    cfg = TrainConfig(**settings)
    batch = cfg.optim.batch
    assert batch is not None, "bench scale gives every child its batch"
    if engine.train(cfg, quiet=True, callbacks=[BatchTimer()]) is None:
        return None
    img_s = settled_img_s(np.diff(starts).tolist(), batch) if len(starts) > 2 else None
    return TrainingMeasure(img_s, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def _in_child(settings: dict[str, Any], folder: Path, stream: bool = False) -> TrainingMeasure:
    """``child_training(settings)`` in a new Python process (a script file, so Lightning's DDP launcher can start it
    again for each rank), the memory map forced when ``stream``."""
    import json
    import os
    import subprocess
    import sys

    script = folder / "child.py"
    script.write_text(CHILD)
    env = os.environ | {"FACELAB_STREAM": "1" if stream else "0"}
    proc = subprocess.run([sys.executable, str(script), json.dumps(settings)], capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("FACELAB-BENCH ")]
    if proc.returncode != 0 or not lines:
        raise FacelabError(f"bench scale: a training process failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
    return TrainingMeasure.from_json(json.loads(lines[-1].removeprefix("FACELAB-BENCH ")))


def bench_scale(
    n: int = 20000, size: int = 128, steps: int = 40, batch: int = 128, quiet: bool = False, runtime: Runtime | None = None
) -> ScaleFigures:
    """Memory and speed of training on ``n`` synthetic faces at ``size`` px (darknet64, ``steps`` batches each): the
    peak resident memory of one training process against the same training on a tiny selection, images/s with the
    images held in memory and read from the memory-mapped cache (a background thread reading ahead), and what each
    of 2 CPU DDP processes holds."""
    import json

    from .progress import say

    rt = runtime or resolved_runtime()
    spec, tiny = f"synth:{n}", f"synth:{10 * batch}"  # tiny: one full validation batch, as the large run has
    for s in (spec, tiny):  # built here, so the measured processes only read them
        build_cache(open_spec(s), (size, size), quiet=quiet)
    common = dict(size=str(size), epochs=1, batch=batch, max_train_batches=steps, precision=rt.precision, device=rt.device)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        runs: dict[str, TrainingMeasure] = {}
        for name, s, stream, extra in (
            ("baseline", tiny, False, {}),
            ("in_memory", spec, False, {}),
            ("streamed", spec, True, {}),
            ("ddp", spec, False, {"devices": 2, "max_train_batches": max(2, steps // 4)}),
        ):
            if not quiet:
                say(f"bench scale: {name} ({s}, {size} px)")
            runs[name] = _in_child(common | {"spec": s, "out": str(folder / name)} | extra, folder, stream)
        ranks = sorted((folder / "ddp" / "ranks").glob("rank*.json"))
        per_rank = [json.loads(p.read_text())["images_bytes"] for p in ranks]
    memory, streamed, baseline = runs["in_memory"], runs["streamed"], runs["baseline"]
    return ScaleFigures(
        n_images=n,
        size=size,
        selection_bytes=n * size * size * 3,
        peak_rss_bytes=memory.peak_rss_bytes,
        baseline_rss_bytes=baseline.peak_rss_bytes,
        in_memory_img_s=memory.img_s,
        streamed_img_s=streamed.img_s,
        streamed_peak_rss_bytes=streamed.peak_rss_bytes,
        ddp={"world": 2, "images_bytes_per_rank": per_rank},
        runtime=rt.describe(),
    )
