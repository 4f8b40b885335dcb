"""Folder listings as nginx, Apache and lighttpd write them, for the file-server fake.

Each renderer follows its server's source: nginx ``ngx_http_autoindex_module.c``
(HTML ``<pre>`` lines padded to 50 columns, names cut with ``..&gt;``, exact or
rounded sizes; JSON and XML), Apache ``mod_autoindex`` (fancy table, fancy ``<pre>``
and plain list; sizes by ``apr_strfsize``) and lighttpd ``mod_dirlisting`` (a table
with class names; sizes by ``http_list_directory_sizefmt``). Times are UTC.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import quote


@dataclass(frozen=True)
class Item:
    name: str
    is_dir: bool
    size: int
    mtime: float


Renderer = Callable[[str, Sequence[Item]], tuple[str, str]]  # (content type, body)
NAME_LEN = 50  # nginx's NGX_HTTP_AUTOINDEX_NAME_LEN


def _href(item: Item) -> str:
    return quote(item.name, safe="!$'()*,-.:;=@_~") + ("/" if item.is_dir else "")


def _utc(mtime: float, fmt: str) -> str:
    return time.strftime(fmt, time.gmtime(mtime))


# -- nginx --------------------------------------------------------------------------

def _nginx_sorted(items: Sequence[Item]) -> list[Item]:
    return sorted(items, key=lambda i: (not i.is_dir, i.name.encode()))


def _nginx_size(item: Item, exact: bool) -> str:
    if exact:
        return f"{'-':>19}" if item.is_dir else f"{item.size:>19}"
    if item.is_dir:
        return "      -"
    length = item.size
    for limit, scale in ((1024**3, "G"), (1024**2, "M")):
        if length > limit - 1:
            size = length // limit + (1 if length % limit > limit // 2 - 1 else 0)
            return f"{size:>6}{scale}"
    if length > 9999:
        return f"{length // 1024 + (1 if length % 1024 > 511 else 0):>6}K"
    return f" {length:>6}"


def nginx_html(uri: str, items: Sequence[Item], exact: bool = True) -> tuple[str, str]:
    title = html.escape(uri, quote=False)
    lines = [f"<html>\r\n<head><title>Index of {title}</title></head>\r\n<body>\r\n"
             f'<h1>Index of {title}</h1><hr><pre><a href="../">../</a>\r\n']
    for item in _nginx_sorted(items):
        name, length = item.name, len(item.name)
        if length > NAME_LEN:
            text, pad = html.escape(name[:NAME_LEN - 3], quote=False) + "..&gt;", ""
        else:
            if item.is_dir and NAME_LEN - length > 0:
                name, length = name + "/", length + 1
            text, pad = html.escape(name, quote=False), " " * (NAME_LEN - length)
        date = _utc(item.mtime, "%d-%b-%Y %H:%M")
        lines.append(f'<a href="{_href(item)}">{text}</a>{pad} {date} '
                     f"{_nginx_size(item, exact)}\r\n")
    lines.append("</pre><hr></body>\r\n</html>\r\n")
    return "text/html", "".join(lines)


def nginx_json(uri: str, items: Sequence[Item]) -> tuple[str, str]:
    rows = []
    for item in _nginx_sorted(items):
        name = json.dumps(item.name, ensure_ascii=False)[1:-1]
        kind = "directory" if item.is_dir else "file"
        mtime = formatdate(item.mtime, usegmt=True)
        size = "" if item.is_dir else f', "size":{item.size}'
        rows.append(f'{{ "name":"{name}", "type":"{kind}", "mtime":"{mtime}"{size} }}')
    return "application/json", "[\r\n" + ",\r\n".join(rows) + "\r\n]\r\n"


def nginx_xml(uri: str, items: Sequence[Item]) -> tuple[str, str]:
    rows = []
    for item in _nginx_sorted(items):
        kind = "directory" if item.is_dir else "file"
        size = "" if item.is_dir else f' size="{item.size}"'
        rows.append(f'<{kind} mtime="{_utc(item.mtime, "%Y-%m-%dT%H:%M:%SZ")}"{size}>'
                    f"{html.escape(item.name, quote=False)}</{kind}>\r\n")
    return "text/xml", '<?xml version="1.0"?>\r\n<list>\r\n' + "".join(rows) + "</list>\r\n"


# -- Apache ---------------------------------------------------------------------------

def apr_strfsize(size: int) -> str:
    """Apache's four-column sizes: ``  0 ``, ``123 ``, ``1.2K``, `` 12K``, ``4.0M``."""
    if size < 973:
        return f"{size:3d} "
    for unit in "KMGTPE":
        remain = size & 1023
        size >>= 10
        if size >= 973:
            continue
        if size < 9 or (size == 9 and remain < 973):
            remain = (remain * 5 + 256) // 512
            if remain >= 10:
                size, remain = size + 1, 0
            return f"{size}.{remain}{unit}"
        if remain >= 512:
            size += 1
        return f"{size:3d}{unit}"
    return "****"


APACHE_HEAD = ('<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<html>\n <head>\n'
               "  <title>Index of {title}</title>\n </head>\n <body>\n<h1>Index of {title}</h1>\n")
APACHE_TAIL = ("<address>Apache/2.4.62 (Debian) Server at 127.0.0.1 Port 80</address>\n"
               "</body></html>\n")


def _apache(uri: str, items: Sequence[Item]) -> tuple[str, str, list[Item]]:
    title = html.escape(uri.rstrip("/") or "/", quote=False)
    parent = uri.rstrip("/").rpartition("/")[0] + "/"
    return APACHE_HEAD.format(title=title), parent, sorted(items, key=lambda i: i.name)


def _icon(item: Item) -> tuple[str, str]:
    if item.is_dir:
        return "folder.gif", "[DIR]"
    if item.name.endswith((".mp3", ".flac", ".ogg")):
        return "sound2.gif", "[SND]"
    return "unknown.gif", "[   ]"


def apache_table(uri: str, items: Sequence[Item]) -> tuple[str, str]:
    head, parent, ordered = _apache(uri, items)
    out = [head, '  <table>\n   <tr><th valign="top"><img src="/icons/blank.gif" alt="[ICO]">'
           '</th><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a>'
           '</th><th><a href="?C=S;O=A">Size</a></th><th><a href="?C=D;O=A">Description</a>'
           '</th></tr>\n   <tr><th colspan="5"><hr></th></tr>\n']
    if uri.strip("/").count("/") >= 1:
        out.append('<tr><td valign="top"><img src="/icons/back.gif" alt="[PARENTDIR]"></td>'
                   f'<td><a href="{parent}">Parent Directory</a></td><td>&nbsp;</td>'
                   '<td align="right">  - </td><td>&nbsp;</td></tr>\n')
    for item in ordered:
        icon, alt = _icon(item)
        size = "  - " if item.is_dir else apr_strfsize(item.size)
        text = html.escape(item.name + ("/" if item.is_dir else ""), quote=False)
        out.append(f'<tr><td valign="top"><img src="/icons/{icon}" alt="{alt}"></td>'
                   f'<td><a href="{_href(item)}">{text}</a></td><td align="right">'
                   f'{_utc(item.mtime, "%Y-%m-%d %H:%M")}  </td><td align="right">{size}</td>'
                   "<td>&nbsp;</td></tr>\n")
    out += ['   <tr><th colspan="5"><hr></th></tr>\n</table>\n', APACHE_TAIL]
    return "text/html;charset=UTF-8", "".join(out)


def apache_pre(uri: str, items: Sequence[Item]) -> tuple[str, str]:
    head, parent, ordered = _apache(uri, items)
    out = [head, '<pre><img src="/icons/blank.gif" alt="Icon "> <a href="?C=N;O=D">Name</a>'
           '                    <a href="?C=M;O=A">Last modified</a>      '
           '<a href="?C=S;O=A">Size</a>  <a href="?C=D;O=A">Description</a><hr>']
    if uri.strip("/").count("/") >= 1:
        out.append('<img src="/icons/back.gif" alt="[PARENTDIR]"> '
                   f'<a href="{parent}">Parent Directory</a>{" " * 29}-   \n')
    for item in ordered:
        icon, alt = _icon(item)
        size = "  - " if item.is_dir else apr_strfsize(item.size)
        text = item.name + ("/" if item.is_dir else "")
        pad = " " * max(1, 24 - len(text))
        out.append(f'<img src="/icons/{icon}" alt="{alt}"> <a href="{_href(item)}">'
                   f"{html.escape(text, quote=False)}</a>{pad}"
                   f'{_utc(item.mtime, "%Y-%m-%d %H:%M")}  {size}  \n')
    out += ["<hr></pre>\n", APACHE_TAIL]
    return "text/html;charset=UTF-8", "".join(out)


def apache_plain(uri: str, items: Sequence[Item]) -> tuple[str, str]:
    head, parent, ordered = _apache(uri, items)
    out = [head, f'<ul><li><a href="{parent}"> Parent Directory</a></li>\n']
    for item in ordered:
        text = html.escape(item.name + ("/" if item.is_dir else ""), quote=False)
        out.append(f'<li><a href="{_href(item)}"> {text}</a></li>\n')
    out += ["</ul>\n", APACHE_TAIL]
    return "text/html;charset=UTF-8", "".join(out)


# -- lighttpd -------------------------------------------------------------------------

def lighttpd_size(size: int) -> str:
    """lighttpd's ``http_list_directory_sizefmt``: always a unit and one decimal."""
    if 0 < size < 100:
        size += 99
    unit = -1
    while True:
        remain = size & 1023
        size >>= 10
        unit += 1
        if not size & ~1023:
            break
    remain = min(remain // 100, 9)
    if size > 999:
        size, remain, unit = 0, 9, unit + 1
    return f"{size}.{remain}{'KMGTPE'[unit]}"


def lighttpd(uri: str, items: Sequence[Item]) -> tuple[str, str]:
    title = html.escape(uri, quote=False)
    out = ['<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
           f"<title>Index of {title}</title>\n"
           '<style type="text/css">\na, a:active {text-decoration: none; color: blue;}\n'
           "td.s, th.s {text-align: right;}\n</style>\n</head>\n<body>\n"
           f'<h2>Index of {title}</h2>\n<div class="list">\n'
           '<table summary="Directory Listing" cellpadding="0" cellspacing="0">\n'
           '<thead><tr><th class="n">Name</th><th class="m">Last Modified</th>'
           '<th class="s">Size</th><th class="t">Type</th></tr></thead>\n<tbody>\n']
    if uri != "/":
        out.append('<tr class="d"><td class="n"><a href="../">..</a>/</td>'
                   '<td class="m">&nbsp;</td><td class="s">- &nbsp;</td>'
                   '<td class="t">Directory</td></tr>\n')
    ordered = sorted(items, key=lambda i: (not i.is_dir, i.name.encode()))
    for item in ordered:
        date = _utc(item.mtime, "%Y-%b-%d %H:%M:%S")
        text = html.escape(item.name, quote=False)
        if item.is_dir:
            out.append(f'<tr class="d"><td class="n"><a href="{_href(item)}">{text}</a>/</td>'
                       f'<td class="m">{date}</td><td class="s">- &nbsp;</td>'
                       '<td class="t">Directory</td></tr>\n')
        else:
            out.append(f'<tr><td class="n"><a href="{_href(item)}">{text}</a></td>'
                       f'<td class="m">{date}</td><td class="s">{lighttpd_size(item.size)}'
                       '</td><td class="t">application/octet-stream</td></tr>\n')
    out.append('</tbody>\n</table>\n</div>\n<div class="foot">lighttpd/1.4.76</div>\n'
               "</body>\n</html>\n")
    return "text/html; charset=utf-8", "".join(out)


RENDERERS: dict[str, Renderer] = {
    "nginx-json": nginx_json,
    "nginx-xml": nginx_xml,
    "nginx-html": nginx_html,
    "nginx-html-rounded": lambda uri, items: nginx_html(uri, items, exact=False),
    "apache": apache_table,
    "apache-pre": apache_pre,
    "apache-plain": apache_plain,
    "lighttpd": lighttpd,
}
