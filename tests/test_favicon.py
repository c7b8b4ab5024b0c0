"""Every page has an icon: a link in the page head, and /favicon.ico for those without one."""

import re

import pytest

pytestmark = pytest.mark.django_db


def fetch(client, url: str):
    response = client.get(url)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body


@pytest.mark.parametrize("url", ["/", "/billing/pricing/", "/accounts/login/", "/accounts/signup/"])
def test_each_page_links_an_icon_that_exists(client, url):
    html = client.get(url).content.decode()
    icons = re.findall(r'<link rel="icon" href="([^"]+)"', html)

    assert len(icons) == 2, icons
    for href in icons:
        response, body = fetch(client, href)
        assert response.status_code == 200, href
        assert response["Content-Type"] in (
            "image/x-icon",
            "image/vnd.microsoft.icon",
            "image/svg+xml",
        ), href
        assert body


def test_a_signed_in_page_links_the_icon_too(client, user):
    client.force_login(user)
    assert '<link rel="icon"' in client.get("/billing/orders/").content.decode()


def test_favicon_ico_at_the_root_answers_for_pages_without_a_link(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    icon, body = fetch(client, response["Location"])
    assert icon.status_code == 200
    assert body[:4] == b"\x00\x00\x01\x00"  # an ICO file
