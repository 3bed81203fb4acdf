"""The rmail console: one Textual app that embeds the server (``python run.py``) or attaches to
one running headless (``rmail console``); panes see either through ``source.ConsoleRuntime``."""
