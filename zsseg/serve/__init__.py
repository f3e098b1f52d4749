"""``zsseg serve``: an HTTP API and a web page around one shared :class:`~zsseg.pipeline.Segmenter`.

Modules: :mod:`~zsseg.serve.app` (the FastAPI app), :mod:`~zsseg.serve.pool` (bounded inference pool),
:mod:`~zsseg.serve.upload` (upload size limit and image decoding), :mod:`~zsseg.serve.instance_fields`
(instances on request: form fields, checks, answer keys), :mod:`~zsseg.serve.command` (the CLI).
FastAPI and uvicorn are optional dependencies (``pip install 'zsseg[serve]'``); importing this package does
not import them.
"""

from __future__ import annotations

from zsseg.serve.config import ServeConfig

__all__ = ["ServeConfig"]
