"""AcmePay, a provider written outside django-paygate, passes the provider contract."""

from __future__ import annotations

import pytest

from django_paygate.testing.contract import ProviderContract

from .conftest import FakeAcmePay
from .provider import SIGNATURE_HEADER

pytestmark = pytest.mark.django_db


class TestAcmePayContract(ProviderContract):
    provider_alias = "acme"
    signature_headers = (SIGNATURE_HEADER,)

    @pytest.fixture(autouse=True)
    def _fake(self, acme_api: FakeAcmePay) -> None:
        self.fake = acme_api
