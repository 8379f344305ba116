"""The NAS run pipeline: the seed's seven saga steps wired to the engine and events."""
