"""What several test files share: the CLI as a user runs it, a small trained run, CelebA's attribute names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ATTR40 = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


def run_cli(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """The installed ``facelab`` command, as a user runs it."""
    exe = Path(sys.executable).with_name("facelab")
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"facelab {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def train_small(out, spec: str, attrs: list[str], epochs: int = 3, size: str = "64"):
    """A darknet64 attribute run on synthetic faces; returns its folder."""
    import facelab
    from facelab.train.engine import TrainConfig

    facelab.train(TrainConfig(spec=spec, out=str(out), attrs=attrs, epochs=epochs, batch=64, size=size), quiet=True)
    return out
