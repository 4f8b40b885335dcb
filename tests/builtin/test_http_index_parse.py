"""The listing parsers on fixed samples shaped like real servers' output."""

from __future__ import annotations

import pytest

from syncd_builtin.http_index_parse import Listed, ListingError, detect, parse, parse_size

FOLDER = "http://files.example.com/music/"

NGINX_HTML = (
    "<html>\r\n<head><title>Index of /music/</title></head>\r\n<body>\r\n"
    '<h1>Index of /music/</h1><hr><pre><a href="../">../</a>\r\n'
    '<a href="Rock%20%26%20Roll/">Rock &amp; Roll/</a>'
    "                                    12-Jun-2025 14:21                   -\r\n"
    '<a href="A%20very%20long%20file%20name%20that%20nginx%20cuts%20at%20fifty%20chars.mp3">'
    "A very long file name that nginx cuts at fifty ..&gt;</a> 01-Jan-2024 00:05"
    "            12345678\r\n"
    '<a href="Caf%C3%A9.flac">Café.flac</a>'
    "                                          28-Feb-2023 23:59               1024\r\n"
    "</pre><hr></body>\r\n</html>\r\n")

NGINX_ROUNDED = (
    '<html><body><h1>Index of /music/</h1><hr><pre><a href="../">../</a>\r\n'
    '<a href="big.iso">big.iso</a>                                            '
    "12-Jun-2025 14:21      4G\r\n"
    '<a href="mid.mp3">mid.mp3</a>                                            '
    "12-Jun-2025 14:21     12M\r\n"
    '<a href="small.txt">small.txt</a>                                          '
    "12-Jun-2025 14:21    9999\r\n"
    "</pre><hr></body></html>\r\n")

NGINX_JSON = (
    '[\r\n{ "name":"Rock & Roll", "type":"directory", "mtime":"Thu, 12 Jun 2025 14:21:07 GMT" },'
    '\r\n{ "name":"sock", "type":"other", "mtime":"Thu, 12 Jun 2025 14:21:07 GMT" },'
    '\r\n{ "name":"Caf\\u00e9 \\"live\\".flac", "type":"file", '
    '"mtime":"Tue, 28 Feb 2023 23:59:01 GMT", "size":1024 }\r\n]')

NGINX_XML = (
    '<?xml version="1.0"?>\r\n<list>\r\n'
    '<directory mtime="2025-06-12T14:21:07Z">Rock &amp; Roll</directory>\r\n'
    '<file mtime="2023-02-28T23:59:01Z" size="1024">Café.flac</file>\r\n</list>\r\n')

APACHE_TABLE = (
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<html>\n <head>\n'
    "  <title>Index of /music</title>\n </head>\n <body>\n<h1>Index of /music</h1>\n  <table>\n"
    '   <tr><th valign="top"><img src="/icons/blank.gif" alt="[ICO]"></th>'
    '<th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th>'
    '<th><a href="?C=S;O=A">Size</a></th><th><a href="?C=D;O=A">Description</a></th></tr>\n'
    '   <tr><th colspan="5"><hr></th></tr>\n'
    '<tr><td valign="top"><img src="/icons/back.gif" alt="[PARENTDIR]"></td>'
    '<td><a href="/">Parent Directory</a></td><td>&nbsp;</td>'
    '<td align="right">  - </td><td>&nbsp;</td></tr>\n'
    '<tr><td valign="top"><img src="/icons/folder.gif" alt="[DIR]"></td>'
    '<td><a href="Rock%20%26%20Roll/">Rock &amp; Roll/</a></td>'
    '<td align="right">2025-06-12 14:21  </td><td align="right">  - </td>'
    "<td>&nbsp;</td></tr>\n"
    '<tr><td valign="top"><img src="/icons/sound2.gif" alt="[SND]"></td>'
    '<td><a href="Caf%c3%a9.flac">Café.flac</a></td>'
    '<td align="right">2023-02-28 23:59  </td><td align="right">1.2M</td>'
    "<td>Live at the Café</td></tr>\n"
    '<tr><td valign="top"><img src="/icons/unknown.gif" alt="[   ]"></td>'
    '<td><a href="empty">empty</a></td><td align="right">2023-02-28 23:59  </td>'
    '<td align="right">  0 </td><td>&nbsp;</td></tr>\n'
    '   <tr><th colspan="5"><hr></th></tr>\n</table>\n'
    "<address>Apache/2.4.62 (Debian) Server at files.example.com Port 80</address>\n"
    "</body></html>\n")

APACHE_22_PRE = (
    "<html><head><title>Index of /music</title></head><body><h1>Index of /music</h1>"
    '<pre><img src="/icons/blank.gif" alt="Icon "> <a href="?C=N;O=D">Name</a>'
    '                    <a href="?C=M;O=A">Last modified</a>      <a href="?C=S;O=A">Size</a>'
    '  <a href="?C=D;O=A">Description</a><hr>'
    '<img src="/icons/back.gif" alt="[DIR]"> <a href="/">Parent Directory</a>'
    "                             -   \n"
    '<img src="/icons/folder.gif" alt="[DIR]"> <a href="Rock%20%26%20Roll/">Rock &amp; Roll/'
    "</a>         12-Jun-2025 14:21    -   \n"
    '<img src="/icons/sound2.gif" alt="[SND]"> <a href="Caf%C3%A9.flac">Café.flac</a>'
    "               28-Feb-2023 23:59  1.2M  \n<hr></pre>\n</body></html>\n")

APACHE_PLAIN = (
    "<html><head><title>Index of /music</title></head><body><h1>Index of /music</h1>\n"
    '<ul><li><a href="/"> Parent Directory</a></li>\n'
    '<li><a href="Rock%20%26%20Roll/"> Rock &amp; Roll/</a></li>\n'
    '<li><a href="Caf%C3%A9.flac"> Café.flac</a></li>\n</ul>\n</body></html>\n')

LIGHTTPD = (
    '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n<title>Index of /music/</title>\n'
    "</head>\n<body>\n<h2>Index of /music/</h2>\n<div class=\"list\">\n"
    '<table summary="Directory Listing" cellpadding="0" cellspacing="0">\n'
    '<thead><tr><th class="n">Name</th><th class="m">Last Modified</th><th class="s">Size</th>'
    '<th class="t">Type</th></tr></thead>\n<tbody>\n'
    '<tr class="d"><td class="n"><a href="../">..</a>/</td><td class="m">&nbsp;</td>'
    '<td class="s">- &nbsp;</td><td class="t">Directory</td></tr>\n'
    '<tr class="d"><td class="n"><a href="Rock%20%26%20Roll/">Rock &amp; Roll</a>/</td>'
    '<td class="m">2025-Jun-12 14:21:07</td><td class="s">- &nbsp;</td>'
    '<td class="t">Directory</td></tr>\n'
    '<tr><td class="n"><a href="Caf%C3%A9.flac">Café.flac</a></td>'
    '<td class="m">2023-Feb-28 23:59:01</td><td class="s">1.2M</td>'
    '<td class="t">audio/flac</td></tr>\n'
    '</tbody>\n</table>\n</div>\n<div class="foot">lighttpd/1.4.76</div>\n</body>\n</html>\n')

ROCK = Listed("Rock & Roll", True, None, "2025-06-12T14:21:00Z")


def html(text: str) -> list[Listed]:
    return parse(text.encode(), "html", FOLDER)


def test_nginx_html_names_come_from_the_href_not_the_cut_link_text() -> None:
    assert html(NGINX_HTML) == [
        ROCK,
        Listed("A very long file name that nginx cuts at fifty chars.mp3", False, 12345678,
               "2024-01-01T00:05:00Z"),
        Listed("Café.flac", False, 1024, "2023-02-28T23:59:00Z"),
    ]


def test_nginx_rounded_sizes_are_read_1024_based() -> None:
    assert [(e.name, e.size) for e in html(NGINX_ROUNDED)] == [
        ("big.iso", 4 * 1024**3), ("mid.mp3", 12 * 1024**2), ("small.txt", 9999)]


def test_nginx_json_and_xml_give_exact_sizes_and_seconds() -> None:
    assert parse(NGINX_JSON.encode(), "nginx_json", FOLDER) == [
        Listed("Rock & Roll", True, None, "2025-06-12T14:21:07Z"),
        Listed('Café "live".flac', False, 1024, "2023-02-28T23:59:01Z"),
    ]  # "other" (sockets, dangling links) left out
    assert parse(NGINX_XML.encode(), "nginx_xml", FOLDER) == [
        Listed("Rock & Roll", True, None, "2025-06-12T14:21:07Z"),
        Listed("Café.flac", False, 1024, "2023-02-28T23:59:01Z"),
    ]


@pytest.mark.parametrize("sample", [APACHE_TABLE, APACHE_22_PRE], ids=["table", "pre-2.2"])
def test_apache_fancy_indexes_skip_sort_and_parent_links(sample: str) -> None:
    entries = html(sample)
    assert entries[:2] == [ROCK, Listed("Café.flac", False, round(1.2 * 1024**2),
                                        "2023-02-28T23:59:00Z")]
    if sample is APACHE_TABLE:
        assert entries[2] == Listed("empty", False, 0, "2023-02-28T23:59:00Z")


def test_apache_plain_list_has_names_only() -> None:
    assert html(APACHE_PLAIN) == [Listed("Rock & Roll", True), Listed("Café.flac", False)]


def test_lighttpd_table_with_seconds_and_a_mime_type_column() -> None:
    assert html(LIGHTTPD) == [
        Listed("Rock & Roll", True, None, "2025-06-12T14:21:07Z"),
        Listed("Café.flac", False, round(1.2 * 1024**2), "2023-02-28T23:59:01Z"),
    ]


def test_links_that_are_not_children_of_the_folder_are_skipped() -> None:
    page = "".join(f'<a href="{href}">x</a>\n' for href in (
        "../", "/", "/music/", "?C=M;O=A", "#top", "http://elsewhere.example.com/music/a.mp3",
        "https://files.example.com/music/b.mp3", "sub/deeper.mp3", "/other/c.mp3",
        "mailto:admin@example.com", "./", "http://files.example.com/music/d.mp3",
        "/music/e%20f.mp3", "g.mp3?download=1"))
    assert [e.name for e in html(f"<html><body><pre>{page}</pre></body></html>")] == [
        "d.mp3", "e f.mp3"]  # https is another origin; a query is no plain file link


@pytest.mark.parametrize(("text", "size"), [
    ("1234", 1234), ("  0 ", 0), ("1.2K", 1229), (" 12K", 12288), ("4G", 4 * 1024**3),
    ("1.5 MB", 1572864), ("- &nbsp;", None), ("-", None), ("", None),
    ("text/plain", None), ("3.0MiB", 3 * 1024**2)])
def test_sizes(text: str, size: int | None) -> None:
    assert parse_size(text.replace("&nbsp;", "\xa0")) == size


@pytest.mark.parametrize(("content_type", "body", "kind"), [
    ("application/json", b"[]", "nginx_json"),
    ("text/xml", b"<?xml?><list></list>", "nginx_xml"),
    ("text/html; charset=utf-8", b"<html></html>", "html"),
    ("", b'  [\r\n{ "name":"a" }]', "nginx_json"),
    ("", b'<?xml version="1.0"?>\r\n<list>', "nginx_xml"),
    ("application/octet-stream", b"<!DOCTYPE html><html>", "html"),
])
def test_detect_by_content_type_then_body(content_type: str, body: bytes, kind: str) -> None:
    assert detect(body, content_type) == kind


def test_what_is_no_listing_is_a_listing_error() -> None:
    with pytest.raises(ListingError, match="neither JSON, XML nor HTML"):
        detect(b"\x00\x01 binary", "application/octet-stream")
    with pytest.raises(ListingError, match="nginx_json"):
        parse(b"{not json", "nginx_json", FOLDER)
    with pytest.raises(ListingError, match="not a JSON list"):
        parse(b'{"a": 1}', "nginx_json", FOLDER)
    with pytest.raises(ListingError, match="<list>"):
        parse(b"<html></html>", "nginx_xml", FOLDER)
    with pytest.raises(ListingError, match="no links"):
        parse(b"plain words, no page", "html", FOLDER)
