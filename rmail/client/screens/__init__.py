"""Screens of the mail client, one per module."""
