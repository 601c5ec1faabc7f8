"""Lambda handler for /v1/models: the core router behind mangum."""

from assistants_core.api.app import create_app
from assistants_core.api.lambda_entry import mangum_handler
from assistants_core.api.models import router

app = create_app(router)
handler = mangum_handler(app)
