"""Uploaded datasets: storage, file formats, schema inference, service and loading.

The modules: the owner of the datasets tables (store), reading the formats (parsing), schema
inference (schema), the service functions the API and the worker call (service), and the
worker's side of loading one for training (loading).
"""
