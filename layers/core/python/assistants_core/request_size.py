"""How large one request may be, and the answer to a larger one.

API Gateway hands the function the request body base64-encoded inside the Lambda event, and
Lambda takes at most 6 MB (6,291,456 bytes) per synchronous invocation: a body of 4.5 MB
becomes 6,000,000 bytes, leaving room for the headers and the request context. A larger body
never reaches the function on AWS, so the upload routes' authorizer refuses it by its
Content-Length, and API Gateway answers with the ACCESS_DENIED gateway response, which
``template.yaml`` words as :data:`TOO_LARGE_MESSAGE` with status 413. Functions check again
(a request without Content-Length, or the local stack's gateway).
"""

from __future__ import annotations

from .errors import PayloadTooLargeError

MAX_REQUEST_BYTES = 4_500_000
# The part size the Uploads API needs here: 4 MiB of data plus the multipart framing fits.
UPLOAD_PART_BYTES = 4 * 1024 * 1024
TOO_LARGE_MESSAGE = (
    "The request is too large: this API accepts at most 4,500,000 bytes per request. Upload larger files "
    "with the Uploads API in parts of at most 4 MiB, for example "
    "client.uploads.upload_file_chunked(file=..., mime_type=..., purpose=..., part_size=4 * 1024 * 1024)."
)


def request_too_large(param: str | None = None) -> PayloadTooLargeError:
    return PayloadTooLargeError(TOO_LARGE_MESSAGE, param=param, code="request_too_large")
