"""Modal forms and the first-run wizard."""
