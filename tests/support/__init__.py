"""What the test suites share: fixtures (registered once from tests/conftest.py) and helpers."""
