"""Serverless Assistants core: the code every Lambda handler shares.

Layout (one obvious place for each thing):

- ``types/``: pydantic models that mirror OpenAI's Assistants API v2 objects, one module per object.
- ``repository/``: every DynamoDB access pattern (keys, documents and conditional writes, the run event log).
- ``services/``: the behaviour of each resource, written against the repository.
- ``api/``: FastAPI routers; the Lambda handlers in ``functions/`` only wrap them.
- ``errors.py``: OpenAI-shaped errors and their HTTP status codes.
"""
