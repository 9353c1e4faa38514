"""The provider contract runs under unittest too: a Django ``TestCase`` subclass."""

from __future__ import annotations

from django.test import TestCase

from django_paygate.providers.dummy import SIGNATURE_HEADER
from django_paygate.testing.contract import ProviderContract
from tests.providers.dummy import test_contract as dummy


class DummyContractTestCase(ProviderContract, TestCase):
    provider_alias = "dummy"
    supports_partial_capture = True
    signature_headers = (SIGNATURE_HEADER,)

    def setUp(self) -> None:
        self.fake = dummy.DummyFake(self.provider_alias)
