#!/bin/bash
# RunsFunction's handler. The Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) runs
# this script, waits until the server on $PORT answers AWS_LWA_READINESS_CHECK_PATH, then turns
# each API Gateway event into an HTTP request and streams the response back
# (AWS_LWA_INVOKE_MODE=response_stream). Layers unpack in /opt: /opt/python holds
# assistants_core and uvicorn (the core layer). app.py sits beside this script.
cd "$(dirname "$0")" || exit 1
export PATH="$PATH:${LAMBDA_TASK_ROOT:-.}/bin"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}/opt/python${LAMBDA_RUNTIME_DIR:+:$LAMBDA_RUNTIME_DIR}"
exec python3 -m uvicorn --host 127.0.0.1 --port "${PORT:-8080}" app:app
