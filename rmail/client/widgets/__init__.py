"""Widgets of the mail client, one per module."""
