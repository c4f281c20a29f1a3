"""The API's own documentation pages, Swagger UI at ``/docs`` and ReDoc at ``/redoc``, with their scripts
and styles shipped in the package (``static/``, taken unchanged from the npm registry; ``VENDORED.txt``
says which versions). FastAPI's defaults load them from a CDN, which a bank's locked-down network, or a
laptop without internet, never reaches: the page stays white."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
STATIC_PATH = "/docs-static"


def add_docs_pages(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` from the packaged assets (create the app with ``docs_url=None``
    and ``redoc_url=None``)."""
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC), name="docs-static")

    def asset(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{STATIC_PATH}/{name}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=f"{request.scope.get('root_path', '')}{app.openapi_url}",
            title=f"{app.title} API",
            swagger_js_url=asset(request, "swagger-ui/swagger-ui-bundle.js"),
            swagger_css_url=asset(request, "swagger-ui/swagger-ui.css"),
            swagger_favicon_url=asset(request, "swagger-ui/favicon-32x32.png"),
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=f"{request.scope.get('root_path', '')}{app.openapi_url}",
            title=f"{app.title} API",
            redoc_js_url=asset(request, "redoc/redoc.standalone.js"),
            redoc_favicon_url=asset(request, "swagger-ui/favicon-32x32.png"),
            with_google_fonts=False,
        )
