"""Pydantic models of the public HTTP contract; the OpenAPI document is generated from them."""
