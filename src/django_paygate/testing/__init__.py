"""A test kit for projects that use django-paygate.

See docs/testing.md. Installed as a pytest plugin (``paygate``) automatically.
"""
