"""Serving through Triton: the python steps' work, the server process and its client."""
