"""The rmail console: one Textual app that embeds the server (``python run.py``)."""
