"""An app with a ``demo`` module, to prove seed_demo finds and runs it."""
