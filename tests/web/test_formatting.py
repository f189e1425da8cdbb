"""The small pure helpers behind the pages: money, time, links, generated art."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from web import art, formatting
from web.accounts import safe_next

NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (1500, "USD", "$15.00"),
        (5, "USD", "$0.05"),
        (123456789, "USD", "$1,234,567.89"),
        (0, "USD", "Free"),
        (3000, "JPY", "¥3,000"),
        (1250, "EUR", "€12.50"),
        (12345, "KWD", "12.345 KWD"),
        (999, "CHF", "9.99 CHF"),
        (-250, "GBP", "-£2.50"),
        (None, "USD", ""),
    ],
)
def test_money_from_minor_units(amount, currency, shown):
    assert formatting.money(amount, currency) == shown


@pytest.mark.parametrize(
    ("ms", "shown"),
    [
        (None, ""),
        (0, "0:00"),
        (999, "0:01"),
        (201_000, "3:21"),
        (180_500, "3:01"),
        (3_725_000, "1:02:05"),
    ],
)
def test_durations(ms, shown):
    assert formatting.duration(ms) == shown


def test_running_time_in_words():
    assert formatting.total_duration(381_500) == "6 min"
    assert formatting.total_duration(3_900_000) == "1 h 5 min"
    assert formatting.total_duration(None) == ""


def test_times_are_shown_in_the_nodes_zone():
    start = datetime(2026, 6, 7, 1, 0, tzinfo=UTC)  # 9pm the evening before, in New York
    end = datetime(2026, 6, 7, 6, 30, tzinfo=UTC)
    assert formatting.when(start, end, NY).endswith("9pm – 2:30am")
    assert formatting.day_label(start, NY).startswith("Sat, Jun 6")
    assert formatting.time_label(start, ZoneInfo("UTC")) == "1am"


def test_slugs():
    assert formatting.slugify("Staten Island") == "staten-island"
    assert formatting.slugify("Bronx") == "bronx"
    assert formatting.slugify("Bay Ridge / Sunset Park") == "bay-ridge-sunset-park"


def test_bios_are_escaped_paragraphs():
    out = formatting.paragraphs("Hi <script>x</script>\nline two\n\nNew para")
    assert str(out) == "<p>Hi &lt;script&gt;x&lt;/script&gt;<br>line two</p>\n<p>New para</p>"
    assert formatting.paragraphs("   ") == ""


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://jay.bandcamp.com", True),
        ("http://example.org/x", True),
        ("javascript:alert(1)", False),
        (" JaVaScRiPt:alert(1)", False),
        ("data:text/html,x", False),
        ("//evil.example", False),
        ("https://", False),
        ("", False),
        (None, False),
    ],
)
def test_only_http_links_are_rendered(url, ok):
    assert bool(formatting.safe_url(url)) is ok


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("/events", True),
        ("/@jay?tab=releases", True),
        ("//evil.example", False),
        ("/\\evil.example", False),
        ("https://evil.example/", False),
        ("events", False),
        ("/login?next=/x", False),
        ("/x\r\nSet-Cookie: a=b", False),
        ("", False),
    ],
)
def test_next_must_be_a_local_path(value, kept):
    assert (safe_next(value) == value) is kept
    assert safe_next(None) is None


def test_generated_covers_are_stable_distinct_and_escaped():
    a1, a2 = art.cover_svg("Kings County", "Jay"), art.cover_svg("Kings County", "Jay")
    b = art.cover_svg("Queens Nights", "Ana")
    strip = lambda svg: str(svg).split("<defs>")[1].split('id="')[0]  # noqa: E731
    assert strip(a1) == strip(a2) and str(a1) != str(b)
    ids1, ids2 = re.findall(r'id="([^"]+)"', str(a1)), re.findall(r'id="([^"]+)"', str(a2))
    assert ids1 and not set(ids1) & set(ids2)  # each use has ids of its own
    hostile = str(art.cover_svg('<script>alert("x")</script>', "</text><b>"))
    assert "<script>" not in hostile and "</text><b>" not in hostile
    assert "&lt;SCRIPT&gt;" in hostile
    assert "style=" not in hostile  # the CSP forbids inline styles
    avatar = str(art.avatar_svg("Kofi & The Grand Concourse"))
    assert ">KT</text>" in avatar


def test_initials():
    assert formatting.initials("Jay Fulton") == "JF"
    assert formatting.initials("St. George Ferry Band") == "SG"
    assert formatting.initials("") == "?"


def test_text_from_other_nodes_is_sanitized_html_and_local_text_is_escaped():
    hostile = (
        '<p>Hi <a href="javascript:x()" onclick="y()">me</a><script>z()</script><img src=x></p>'
    )
    remote = str(formatting.rich_text(hostile, local=False))
    assert "<p>Hi" in remote and "<script" not in remote and "onclick" not in remote
    assert "javascript:" not in remote and "<img" not in remote
    safe = str(formatting.rich_text('<a href="https://ok.example">ok</a>', local=False))
    assert 'href="https://ok.example"' in safe and "nofollow" in safe
    assert "&lt;p&gt;" in str(formatting.rich_text("<p>plain</p>", local=True))
