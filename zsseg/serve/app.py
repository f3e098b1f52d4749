"""The FastAPI app: ``POST /v1/segment`` (JSON), ``POST /v1/segment.png``, ``/v1/info``, ``/healthz`` and the page."""

from __future__ import annotations

import base64
import io
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

import zsseg
from zsseg.errors import ZsSegError
from zsseg.io import parse_classes
from zsseg.pipeline import Segmenter
from zsseg.prompts import TEMPLATE_SETS
from zsseg.serve.config import ServeConfig
from zsseg.serve.errors import ApiError
from zsseg.serve.instance_fields import (
    INSTANCE_DEFAULTS,
    InstanceForm,
    instance_fields,
    instance_form,
    instance_options,
)
from zsseg.serve.pool import InferencePool
from zsseg.serve.upload import BodySizeLimit, decode_image
from zsseg.viz import palette

log = logging.getLogger("zsseg.serve")
STATIC = Path(str(resources.files("zsseg.serve") / "static"))
ASSETS = Path(str(resources.files("zsseg") / "assets"))
# The bundled example images the page offers, by name (a fixed table: no client text becomes a path).
EXAMPLES: dict[str, Path] = {"astronaut.jpg": ASSETS / "astronaut.jpg"}
# The page loads nothing from outside the server (the browser enforces it).
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; script-src 'self'; style-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

# The request fields of both segment endpoints (module level: FastAPI resolves these annotations by name).
ImageField = Annotated[UploadFile, File(description="the photo (JPEG, PNG, BMP, TIFF, WebP)")]
ClassesField = Annotated[str, Form(description='class names, comma- or newline-separated: "cat, sofa, plant"')]
TemplatesField = Annotated[str | None, Form(description=f"prompt template set: {', '.join(TEMPLATE_SETS)}")]
UnlabelledField = Annotated[float | None, Form(description="leave pixels below this confidence unlabelled (255), 0..1")]
BackgroundField = Annotated[
    float | None, Form(description='with a "background" class: confidence below which pixels are background')
]
InstanceFields = Annotated[InstanceForm, Depends(instance_form)]


def _templates(segmenter: Segmenter, templates: str | None) -> str | None:
    """A request's template set, checked before it queues: None (the server's), or a set the classifier takes.

    Raises:
        ApiError: 422 for an unknown set, or a classifier whose prompts are learned.
    """
    if not templates:
        return None
    if templates not in TEMPLATE_SETS:
        raise ApiError(422, f"unknown templates {templates!r}: use one of {', '.join(TEMPLATE_SETS)}")
    try:
        segmenter.classifier.resolve_templates(templates)
    except ZsSegError as exc:
        raise ApiError(422, f"{exc} (this server's prompts are fixed: leave templates empty)") from exc
    return templates


def _check_threshold(name: str, value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ApiError(422, f"{name} must be between 0 and 1, got {value}")


def _vocabulary(text: str, max_classes: int) -> list[str]:
    try:
        names = parse_classes(text)
    except ZsSegError as exc:
        raise ApiError(422, str(exc).replace('--classes "', 'classes="')) from exc
    if len(names) > max_classes:
        raise ApiError(422, f"{len(names)} classes given, the limit is {max_classes}: send fewer class names")
    return names


def _segment_job(
    seg: Segmenter,
    data: bytes,
    classes: list[str],
    options: dict[str, Any],
    max_pixels: int,
    queued_at: float,
    instances: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Runs in a worker thread: decode, segment with the request's ``options`` (templates, thresholds; None: the
    server's), encode the label map; with ``instances`` (:meth:`Segmentation.instances`' arguments) extract the
    instances too. Returns the JSON answer."""
    started = time.perf_counter()
    image = decode_image(data, max_pixels)
    decoded = time.perf_counter()
    result = seg.segment(image, classes, **options)
    t0 = time.perf_counter()
    buf = io.BytesIO()
    result.label_image().save(buf, format="PNG")
    png = buf.getvalue()
    timings = {"queue": started - queued_at, "decode": decoded - started, **result.timings}
    timings["encode"] = time.perf_counter() - t0
    extra: dict[str, Any] = {}
    if instances is not None:
        extra, timings["instances"] = instance_fields(result, instances)
    timings["total"] = time.perf_counter() - queued_at
    summary = result.summary()
    summary["timings_s"] = {k: round(v, 4) for k, v in timings.items()}
    summary["templates"] = options["templates"] or seg.classifier.template_name
    summary["colors"] = ["#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb)) for rgb in palette(len(classes))]
    summary["label_map_png_base64"] = base64.b64encode(png).decode("ascii")
    summary.update(extra)
    return summary


def create_app(segmenter: Segmenter, config: ServeConfig | None = None) -> FastAPI:
    """The HTTP service around one loaded ``segmenter``, shared by all requests.

    Args:
        segmenter: the model, loaded once (e.g. ``zsseg.load(...)``).
        config: limits and pool sizes; defaults to :class:`ServeConfig`'s.
    """
    cfg = config or ServeConfig()
    pool = InferencePool(cfg.workers, cfg.queue, cfg.timeout_s, cfg.retry_after_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Multipart uploads over 1 MB spool to temporary files: keep them in one private folder, removed at exit.
        private = tempfile.mkdtemp(prefix="zsseg-serve-")
        previous, tempfile.tempdir = tempfile.tempdir, private
        app.state.temp_dir = private
        try:
            yield
        finally:
            pool.shutdown()  # the server has let in-flight requests finish; wait for any orphaned job too
            tempfile.tempdir = previous
            shutil.rmtree(private, ignore_errors=True)

    app = FastAPI(
        title="zsseg",
        version=zsseg.__version__,
        description="Open-vocabulary semantic segmentation: label every pixel with class names in plain words.",
        docs_url=None,  # Swagger UI / ReDoc would load their assets from a CDN; the schema is at /openapi.json
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.pool = pool
    app.add_middleware(BodySizeLimit, max_bytes=cfg.max_upload_bytes)  # type: ignore[arg-type]

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors())
        err = ApiError(422, f"invalid request ({problems}): send multipart/form-data with an image file and classes")
        return JSONResponse(err.body(), status_code=422)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        err = ApiError(500, f"internal error ({type(exc).__name__}: {exc}): the server log has the details")
        return JSONResponse(err.body(), status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail), "status": exc.status_code}, exc.status_code, exc.headers)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers["Content-Security-Policy"] = PAGE_CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    async def segment(
        image: UploadFile,
        classes: str,
        templates: str | None,
        unlabelled: float | None,
        background: float | None,
        instance_request: InstanceForm | None = None,
    ) -> dict[str, Any]:
        queued_at = time.perf_counter()
        names = _vocabulary(classes, cfg.max_classes)
        _check_threshold("unlabelled_threshold", unlabelled)
        _check_threshold("background_threshold", background)
        wanted = instance_options(instance_request or InstanceForm(), names)
        options = {
            "templates": _templates(segmenter, templates),
            "unlabelled_threshold": unlabelled,
            "background_threshold": background,
        }
        data = await image.read()
        await image.close()
        try:
            return await pool.run(
                lambda: _segment_job(segmenter, data, names, options, cfg.max_pixels, queued_at, wanted)
            )
        except ZsSegError as exc:
            raise ApiError(422, str(exc)) from exc

    @app.post("/v1/segment", summary="Segment an image into the named classes (JSON, label map PNG in base64)")
    async def segment_json(
        image: ImageField,
        classes: ClassesField,
        instance_request: InstanceFields,
        templates: TemplatesField = None,
        unlabelled_threshold: UnlabelledField = None,
        background_threshold: BackgroundField = None,
    ) -> JSONResponse:
        body = await segment(image, classes, templates, unlabelled_threshold, background_threshold, instance_request)
        return JSONResponse(body)

    @app.post(
        "/v1/segment.png",
        summary="Segment an image; answer the label map PNG (pixel value = class index, 255 = unlabelled)",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    async def segment_png(
        image: ImageField,
        classes: ClassesField,
        templates: TemplatesField = None,
        unlabelled_threshold: UnlabelledField = None,
        background_threshold: BackgroundField = None,
        instances: Annotated[bool, Form(include_in_schema=False)] = False,
    ) -> Response:
        if instances:
            raise ApiError(422, "/v1/segment.png answers the label map only: ask POST /v1/segment for instances")
        body = await segment(image, classes, templates, unlabelled_threshold, background_threshold)
        png = base64.b64decode(body["label_map_png_base64"])
        headers = {"X-Zsseg-Num-Classes": str(len(body["classes"])), "X-Zsseg-Model": body["model"]}
        return Response(png, media_type="image/png", headers=headers)

    @app.get("/healthz", summary="Liveness: 200 while the server runs")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "pending": pool.pending}

    @app.get("/v1/info", summary="Model, proposals, version, limits")
    async def info() -> dict[str, Any]:
        return {
            "version": zsseg.__version__,
            "model": segmenter.model_name,
            "proposals": getattr(segmenter.proposer, "name", type(segmenter.proposer).__name__),
            "templates": segmenter.classifier.template_name,
            "template_sets": list(TEMPLATE_SETS),
            "examples": sorted(EXAMPLES),
            "instances": INSTANCE_DEFAULTS,
            "limits": {
                "max_upload_bytes": cfg.max_upload_bytes,
                "max_pixels": cfg.max_pixels,
                "max_classes": cfg.max_classes,
                "workers": cfg.workers,
                "queue": cfg.queue,
                "timeout_s": cfg.timeout_s,
            },
        }

    @app.get("/v1/examples/{name}", summary="A bundled example image")
    async def example(name: str) -> FileResponse:
        if name not in EXAMPLES:
            raise ApiError(404, f"no example named {name!r}: use one of {', '.join(sorted(EXAMPLES))}")
        return FileResponse(EXAMPLES[name])

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
