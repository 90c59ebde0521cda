"""The one place errors become the HTTP envelope ``{"success": false, "error": ...}``."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from sfu import SfuError

from .errors import INTERNAL_ERROR, ApiError
from .media_errors import media_error
from .metrics import METRICS
from .rate_limits import RateLimited
from .store.outage import outage_error

log = logging.getLogger(__name__)


def _failure(status: int, message: str) -> web.Response:
    return web.json_response({"success": False, "error": message}, status=status)


@web.middleware
async def error_envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        request.app[METRICS].count_error("http", error)
        response = _failure(error.status, error.message)
        if isinstance(error, RateLimited):
            response.headers["Retry-After"] = str(error.retry_after)
        return response
    except SfuError as error:
        mapped = media_error(error)
        request.app[METRICS].count_error("http", mapped)
        return _failure(mapped.status, mapped.message)
    except web.HTTPRequestEntityTooLarge:
        return _failure(413, "Request body too large")
    except web.HTTPMethodNotAllowed as error:
        response = _failure(405, "Method not allowed")
        response.headers["Allow"] = ",".join(sorted(error.allowed_methods))
        return response
    except web.HTTPNotFound:
        return _failure(404, "Not found")
    except web.HTTPException:
        raise
    except Exception as error:
        outage = outage_error(error)
        if outage is not None:
            log.warning("%s %s: store unreachable: %s", request.method, request.path, error)
            request.app[METRICS].count_error("http", outage)
            return _failure(outage.status, outage.message)
        log.exception("unhandled error in %s %s", request.method, request.path)
        request.app[METRICS].count_error("http", error)
        return _failure(500, INTERNAL_ERROR)
