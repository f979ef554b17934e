"""Exceptions shown to users (CLI message, napari notification) as one human-readable line."""


class InputError(ValueError):
    """A file, folder or parameter the user gave cannot be used; the message says why."""
