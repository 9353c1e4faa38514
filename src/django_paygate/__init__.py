"""django-paygate: take payments in Django without losing, duplicating or inventing money."""

__version__ = "0.1.0.dev0"
