"""The HTTP service (``pynima serve``): the FastAPI app, its guards, and the uvicorn server around it."""
