"""``facelab serve``: a FastAPI app with one page (upload or webcam) and ``POST /api/predict``."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from ..data.images import TooManyPixels, UnreadableImage, decode_bytes
from ..hardware import Runtime
from ..progress import say
from .analyser import Analyser, load_runs, to_json

MAX_UPLOAD = 10 * 1024 * 1024
PAGE = Path(__file__).with_name("static") / "index.html"


class UploadError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


async def _read_limited(upload: UploadFile) -> bytes:
    """The upload's bytes, refusing more than MAX_UPLOAD without reading them all."""
    data = await upload.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise UploadError(413, f"{upload.filename or 'upload'}: larger than {MAX_UPLOAD // (1024 * 1024)} MB; send a smaller image")
    if not data:
        raise UploadError(400, "the upload is empty: choose an image file")
    return data


def create_app(
    run_paths: list[str | Path],
    detector: str = "auto",
    upsample: int | None = None,
    min_score: float | None = None,
    runtime: Runtime | None = None,
) -> FastAPI:
    analyser = Analyser(load_runs(run_paths, runtime=runtime), detector, upsample, min_score)
    app = FastAPI(title="facelab", docs_url="/api/docs")
    stats = {"requests": 0, "seconds": 0.0}

    @app.exception_handler(UploadError)
    async def upload_error(_request: Request, exc: UploadError):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError):
        """A missing or malformed field answers in the API's own {"error": ...} shape, not FastAPI's {"detail": [...]}."""
        problems = "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": f"bad request ({problems}); send an image as the form field 'file'"}, status_code=422)

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return PAGE.read_text(encoding="utf-8")

    @app.get("/api/info")
    async def info():
        return {
            "runs": [
                {"path": str(r.path), "task": r.run.task.name, "arch": r.run.cfg.model.arch, "outputs": r.outputs[:50], "cam": r.cam_method}
                for r in analyser.runs
            ],
            "targets": analyser.targets,
            "detector": analyser.detector.name,
            "max_upload_mb": MAX_UPLOAD // (1024 * 1024),
            "mean_ms_per_request": 1000 * stats["seconds"] / max(1, stats["requests"]),
        }

    @app.post("/api/predict")
    async def predict(file: UploadFile = File(...), target: str | None = Form(None), detect: bool = Form(True), cam: bool = Form(True)):
        data = await _read_limited(file)
        name = file.filename or "upload"
        try:
            image = await run_in_threadpool(decode_bytes, data, name)
        except TooManyPixels as exc:
            raise UploadError(400, f"{exc} (a decompression bomb?); send an image under 64 megapixels") from None
        except UnreadableImage:
            raise UploadError(415, f"{name}: not an image facelab can read (send a JPEG, PNG, BMP, GIF, TIFF or WebP)") from None
        if target is not None and target not in analyser.targets:
            raise UploadError(400, f"target {target!r}: the loaded runs predict {', '.join(analyser.targets[:20])}")
        t = time.perf_counter()
        faces = await run_in_threadpool(analyser.analyse, image, target, detect, cam)
        stats["requests"] += 1
        stats["seconds"] += time.perf_counter() - t
        return to_json(faces)

    return app


def serve(
    run_paths: list[str | Path],
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    detector: str = "auto",
    upsample: int | None = None,
    min_score: float | None = None,
    runtime: Runtime | None = None,
) -> None:
    """The page on http://HOST:PORT/, said once the runs have opened (a damaged one stops it first, in one line)."""
    import uvicorn

    app = create_app(run_paths, detector, upsample, min_score, runtime)
    say(f"facelab serving {len(run_paths)} run(s) on http://{host}:{port}/ (Ctrl+C to stop)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
