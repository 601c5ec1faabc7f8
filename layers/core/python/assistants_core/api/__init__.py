"""FastAPI routers for each resource; ``functions/<resource>/app.py`` wraps one of them."""
