"""rmail — an all-in-one mail server (SMTP, IMAP, REST) with a Textual console."""

__version__ = "0.1.0"
