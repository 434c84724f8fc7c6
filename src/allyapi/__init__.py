"""allyapi: the headless REST API behind workplace mental health ally networks."""

__version__ = "0.1.0"
