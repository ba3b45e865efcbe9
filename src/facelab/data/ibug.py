"""iBUG 300-W: .pts (or menpo .ljson) files beside the images, or dlib's XML (imglab) lists, 68 points."""

from __future__ import annotations

import json
import xml.sax
from pathlib import Path

import numpy as np

from ..errors import FacelabError
from .faceset import FileFaceSet, drop_missing
from .images import IMAGE_SUFFIXES, walk_files
from .landmark_layouts import IBUG68_MIRROR
from .sources import data_source

TEST_FOLDERS = ("testset", "ibug", "test")
MACHINE_LABELS = "machine labels"  # how ``facelab data label``'s XML comment starts
VALID_EVERY = 10  # every 10th training image is held out for validation


def read_pts(path: Path) -> tuple[np.ndarray, bool]:
    """The points of a .pts file and whether it has the usual header ('version: 1', 'n_points: 68', '{', points, '}');
    several public copies of 300-W hold only the n lines of 'x y'."""
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    if lines and not any(ln.startswith(("version", "n_points", "{")) for ln in lines):
        return _points(path, [(k + 1, ln) for k, ln in enumerate(lines)]), False
    try:
        n = int(next(ln for ln in lines if ln.startswith("n_points")).split(":")[1])
        start = lines.index("{") + 1
        end = lines.index("}", start)
    except (StopIteration, ValueError, IndexError):
        raise FacelabError(f"{path}: expected 'version: 1', 'n_points: 68', '{{', points, '}}' (or only lines of 'x y')") from None
    if end - start != n:
        raise FacelabError(f"{path}: n_points says {n} but {end - start} point lines follow")
    return _points(path, [(start + k + 1, ln) for k, ln in enumerate(lines[start:end])]), True


def _points(path: Path, numbered: list[tuple[int, str]]) -> np.ndarray:
    pts = np.zeros((len(numbered), 2), dtype=np.float32)
    for k, (line_no, ln) in enumerate(numbered):
        pts[k] = finite_point(path, line_no, ln.split(), "'x y'")
    return pts - 1.0


def finite_point(path: Path, line_no: int, values: list[str], form: str) -> tuple[float, float]:
    """Two finite numbers, or one line naming the file and line (``line_no`` 0: unknown)."""
    where = f"{path}:{line_no}" if line_no else str(path)
    try:
        x, y = (float(v) for v in values)
    except ValueError:
        raise FacelabError(f"{where}: expected {form}, got {' '.join(values)[:80]!r}") from None
    if not (np.isfinite(x) and np.isfinite(y)):
        raise FacelabError(f"{where}: coordinates must be finite numbers, got {x} {y}")
    return x, y


def parse_ljson(path: Path) -> np.ndarray:
    """(n, 2) pixel (x, y) from menpo's landmark JSON (``groups`` or the older ``landmarks`` layout; points (y, x))."""
    try:
        data = json.loads(path.read_text(errors="replace"))
        group = next(iter(data["groups"].values())) if "groups" in data else data
        points = group["landmarks"]["points"]
    except json.JSONDecodeError as exc:
        raise FacelabError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except (KeyError, StopIteration, TypeError, AttributeError):
        raise FacelabError(f"{path}: expected menpo's LJSON layout (groups -> landmarks -> points)") from None
    if not isinstance(points, list) or not points:
        raise FacelabError(f"{path}: no landmark points in it")
    pts = np.zeros((len(points), 2), dtype=np.float32)
    for k, p in enumerate(points):
        if not isinstance(p, list) or len(p) != 2:
            raise FacelabError(f"{path}: point {k} is {str(p)[:40]!r}, expected [y, x]")
        y, x = finite_point(path, 0, [str(v) for v in p], "[y, x]")
        pts[k] = (x, y)
    return pts


ANNOTATIONS = {".pts": read_pts, ".ljson": lambda path: (parse_ljson(path), True)}  # (points, with a header)


def _split_for(rel: str, index: int) -> int:
    parts = [p.lower() for p in Path(rel).parts]
    if any(t in parts for t in TEST_FOLDERS):
        return 2
    return 1 if index % VALID_EVERY == VALID_EVERY - 1 else 0


def _from_pts(root: Path, spec: str, files: list[Path]) -> FileFaceSet:
    pts_files = [p for p in files if p.suffix.lower() in ANNOTATIONS]
    names, paths, lms, problems = [], [], [], []
    headerless = 0
    for pf in pts_files:
        img = next((pf.with_suffix(s) for s in IMAGE_SUFFIXES | {".JPG", ".PNG"} if pf.with_suffix(s).exists()), None)
        if img is None:
            problems.append(f"{pf.relative_to(root)}: no image beside it, skipped")
            continue
        pts, header = ANNOTATIONS[pf.suffix.lower()](pf)
        headerless += not header
        if len(pts) != 68:
            problems.append(f"{pf.relative_to(root)}: {len(pts)} points, not 68; skipped")
            continue
        names.append(str(img.relative_to(root)))
        paths.append(img)
        lms.append(pts)
    splits = [_split_for(n, i) for i, n in enumerate(names)]
    fs = _faceset(spec, names, paths, np.stack(lms) if lms else np.zeros((0, 68, 2)), None, problems, splits)
    if headerless:
        fs.notes.append(f"{headerless} .pts files hold only their 'x y' lines (no version/n_points/braces header): read as 1-based points")
    return fs


class _DlibXml(xml.sax.ContentHandler):
    """dlib's imglab XML read with line numbers: images, their boxes, 68 parts each, the comment."""

    def __init__(self, path: Path):
        super().__init__()
        self.path, self.image, self.box, self.text = path, None, None, None
        self.faces: list[tuple[str, list, list]] = []  # (file, box, parts)
        self.comment = ""
        self.problems: list[str] = []

    def _line(self) -> int:
        return self._locator.getLineNumber() if getattr(self, "_locator", None) else 0

    def startElement(self, name, attrs):
        if name == "image":
            self.image = attrs.get("file")
            if not self.image:
                raise FacelabError(f"{self.path}:{self._line()}: <image> without a file attribute")
        elif name == "box" and self.image is not None:
            box = [attrs.get(k) for k in ("left", "top", "width", "height")]
            self.box = (self._numbers(box, "box left/top/width/height"), [])
        elif name == "part" and self.box is not None:
            try:
                index = int(attrs.get("name", ""))
            except ValueError:
                raise FacelabError(f"{self.path}:{self._line()}: <part name={attrs.get('name')!r}> is not a point number") from None
            self.box[1].append((index, finite_point(self.path, self._line(), [attrs.get("x", ""), attrs.get("y", "")], "x='..' y='..'")))
        elif name == "comment":
            self.text = []

    def _numbers(self, values: list, what: str) -> list[float]:
        try:
            out = [float(v) for v in values]
        except (TypeError, ValueError):
            raise FacelabError(f"{self.path}:{self._line()}: {what} must be numbers, got {values}") from None
        if not np.isfinite(out).all():
            raise FacelabError(f"{self.path}:{self._line()}: {what} must be finite, got {values}")
        return out

    def characters(self, content):
        if self.text is not None:
            self.text.append(content)

    def endElement(self, name):
        if name == "box" and self.box is not None:
            box, parts = self.box
            if len(parts) == 68:
                self.faces.append((self.image, box, [p for _, p in sorted(parts)]))
            else:
                self.problems.append(f"{self.path.name}: {self.image} has {len(parts)} parts, skipped")
            self.box = None
        elif name == "image":
            self.image = None
        elif name == "comment" and self.text is not None:
            self.comment, self.text = "".join(self.text).strip(), None


def read_dlib_xml(path: Path) -> _DlibXml:
    handler = _DlibXml(path)
    try:
        xml.sax.parse(str(path), handler)
    except xml.sax.SAXParseException as exc:
        raise FacelabError(f"{path}:{exc.getLineNumber()}: not valid XML ({exc.getMessage()})") from None
    except (LookupError, ValueError, UnicodeError) as exc:  # a mangled encoding declaration
        raise FacelabError(f"{path}:1: cannot decode the XML ({exc}); is the encoding declaration right?") from None
    return handler


def _from_xml(xml_files: list[Path], spec: str) -> FileFaceSet:
    names, paths, lms, boxes, problems, notes, test_lists = [], [], [], [], [], [], []
    for xf in xml_files:
        parsed = read_dlib_xml(xf)
        problems += parsed.problems
        if parsed.comment.startswith(MACHINE_LABELS):
            notes.append(f"{xf.name}: {parsed.comment}")
        for file, box, parts in parsed.faces:
            test_lists.append("test" in xf.name.lower())  # dlib's labels_ibug_300W_test.xml
            names.append(file)
            paths.append(xf.parent / file)
            lms.append(parts)
            boxes.append(box)
    splits = [2 if in_test else _split_for(n, i) for i, (n, in_test) in enumerate(zip(names, test_lists))]
    fs = _faceset(
        spec,
        names,
        paths,
        np.asarray(lms, dtype=np.float32).reshape(-1, 68, 2),
        np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        problems,
        splits,
    )
    fs.notes += notes
    return fs


def _faceset(spec, names, paths, landmarks, boxes, problems, splits) -> FileFaceSet:
    if not names:
        raise FacelabError(f"{spec}: no annotated 300-W faces found (expected IMAGE.pts or IMAGE.ljson beside each image, or dlib XML)")
    fs = FileFaceSet(
        spec=spec,
        source="300w",
        names=names,
        paths=paths,
        split=np.array(splits, dtype=np.int8),
        landmarks=landmarks.astype(np.float32),
        boxes=boxes,
        mirror=IBUG68_MIRROR,
        default_crop="box" if boxes is not None else "landmarks",
        problems=problems,
    )
    return drop_missing(fs)


@data_source("300w")
def load_300w(path: Path, spec: str) -> FileFaceSet:
    if path.is_file() and path.suffix.lower() == ".xml":
        return _from_xml([path], spec)
    if not path.is_dir():
        raise FacelabError(f"{path}: not found; expected a 300-W folder (images + .pts) or a dlib XML file")
    files = walk_files(path)
    if any(p.suffix.lower() in ANNOTATIONS for p in files):
        return _from_pts(path, spec, files)
    xml_files = sorted(path.glob("*.xml"))
    if xml_files:
        return _from_xml(xml_files, spec)
    raise FacelabError(f"{path}: no .pts/.ljson files and no dlib XML found; expected IMAGE.pts beside each image")
