"""API errors and their JSON form `{"error": {"code", "message", "field"?}}`."""

from starlette.responses import JSONResponse


class ApiError(Exception):
    """An error sent as a response with `status`, a stable machine-readable `code` and a message for people."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}


def error_body(code: str, message: str, field: str | None = None) -> dict:
    """Return the JSON body of an error response."""
    error: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


def error_response(status: int, code: str, message: str, field: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """Return an error as a JSON response."""
    return JSONResponse(error_body(code, message, field), status_code=status, headers=headers)


def api_error_response(error: ApiError) -> JSONResponse:
    """Return the JSON response of an `ApiError`."""
    return error_response(error.status, error.code, error.message, error.field, error.headers)


def bearer_challenge(error: str | None = None) -> dict[str, str]:
    """Return the WWW-Authenticate header of a 401 for bearer tokens, with an RFC 6750 error code when there is one."""
    value = 'Bearer realm="graphmem"'
    if error is not None:
        value += f', error="{error}"'
    return {"WWW-Authenticate": value}
