"""Runs and run steps, served by uvicorn behind the Lambda Web Adapter (see run.sh).

The adapter turns API Gateway's streamed invocation into HTTP and streams the response back,
which is how a Python Lambda sends Server-Sent Events.
"""

from assistants_core.api.app import create_app
from assistants_core.api.runs import router

app = create_app(router)
