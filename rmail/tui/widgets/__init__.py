"""The console's widgets: the header and one pane per module."""
