"""FastAPI application: thin routers over the service functions."""
