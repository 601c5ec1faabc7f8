"""Lambda handler for /v1/files and /v1/uploads: the core routers behind mangum."""

from assistants_core.api.app import create_app
from assistants_core.api.files import router, uploads_router
from assistants_core.api.lambda_entry import mangum_handler

app = create_app(router, uploads_router)
handler = mangum_handler(app)
