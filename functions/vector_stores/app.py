"""Lambda handler for /v1/vector_stores (files, file batches, search): the core router behind mangum."""

from assistants_core.api.app import create_app
from assistants_core.api.lambda_entry import mangum_handler
from assistants_core.api.vector_stores import router

app = create_app(router)
handler = mangum_handler(app)
