# SPDX-License-Identifier: MIT
"""Configurable request limits: a request whose headers exceed
max_header_size answers 431 (or 413), a body over max_body_size answers
413; requests within the limits are served normally on the same daemon."""

import pytest

from helpers import request


@pytest.fixture(scope="module")
def gw(module_gateway_factory):
    return module_gateway_factory(server={"max_header_size": 2048, "max_body_size": 1024})


def test_small_headers_ok(gw, certs):
    assert request(gw.port, certs, "/main.html", headers={"X-Pad": "a" * 500}).status == 200


def test_header_too_large(gw, certs):
    try:
        r = request(gw.port, certs, "/main.html", headers={"X-Pad": "a" * 8000})
    except ConnectionError as e:
        pytest.fail(f"connection closed without a 431/413 answer: {e}")
    assert r.status in (431, 413), \
        f"8000 bytes of headers served ({r.status}) with max_header_size = 2048"


def test_body_too_large(gw, certs):
    try:
        r = request(gw.port, certs, "/health", method="POST", body=b"b" * 8000)
    except ConnectionError as e:
        pytest.fail(f"connection closed without a 413 answer: {e}")
    assert r.status == 413, r


def test_header_too_large_default_limit(gateway, certs):
    """With the default max_header_size (16 KiB), 64 KiB of headers are
    refused with 431 (or 413), not served and not a dropped connection."""
    try:
        r = request(gateway.port, certs, "/main.html",
                    headers={f"X-Pad-{i}": "a" * 4000 for i in range(16)})
    except ConnectionError as e:
        pytest.fail(f"connection closed without a 431/413 answer: {e}")
    assert r.status in (431, 413), r
