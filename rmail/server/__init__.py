"""The mail server: core services, protocol adapters and the runtime that runs them.

Nothing under ``rmail.server`` imports Textual; ``rmail.server.core`` imports no protocol
package (tests/test_layering.py keeps it so).
"""
