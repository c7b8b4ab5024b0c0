"""The JSON API (``/api/v1/``) and the personal API keys that open it."""
