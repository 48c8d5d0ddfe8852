import pytest

from .factories import Driver


@pytest.fixture
def driver():
    return Driver()
