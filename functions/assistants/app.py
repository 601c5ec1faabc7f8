"""Lambda handler for /v1/assistants: the core router behind mangum."""

from assistants_core.api.app import create_app
from assistants_core.api.assistants import router
from assistants_core.api.lambda_entry import mangum_handler

app = create_app(router)
handler = mangum_handler(app)
