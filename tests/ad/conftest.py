"""The ``samba_dc`` fixture is registered in tests/conftest.py (one DC per session for every folder)."""
