"""
Self-contained HTML pages built from the web files in pages/ (beside common/): a page's markup,
script and style after those every page shares (lib.js, base.css), in template.html, with its data
embedded as JSON. The Content-Security-Policy allows that one script and style by their SHA-256
hashes and nothing else. The pages build their markup with DOM calls only.

References:
  https://www.w3.org/TR/CSP3/#grammardef-hash-source  (a script or style allowed by its hash)
  https://html.spec.whatwg.org/multipage/scripting.html#restrictions-for-contents-of-script-elements
"""
import base64
import hashlib
import html
import json
import os
import re

from common.vocabulary import SURROGATE

# The pages' own files: found from this module, so any working directory will do
PAGES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pages")


def source(name):
    """The text of pages/<name>, its line ends read as LF whatever the checkout wrote."""
    with open(os.path.join(PAGES, name), encoding="utf-8") as f:
        return f.read()


TEMPLATE = source("template.html")
# How every page this tool writes begins, up to its CSP: what tells an earlier page of ours from
# another file (check_replaceable); pages written before pages/ existed begin the same way
PAGE_START = TEMPLATE[:TEMPLATE.index("__CSP__")].encode("utf-8")


def csp_hash(text):
    """The Content-Security-Policy source that allows exactly this inline script or style."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


class Page:
    """One kind of page: pages/<name>.html (its markup), .js after lib.js and .css after base.css,
    under `title`. It may run that script and style and nothing else: no inline script or handler
    that text in the data could smuggle in (no 'unsafe-inline'), nothing from the network
    (default-src 'none')."""

    def __init__(self, name, title):
        script = source("lib.js") + source(name + ".js")
        style = source("base.css") + source(name + ".css")
        for text, tag in ((script, "script"), (style, "style")):
            if "</" + tag in text.lower():  # it would end its element early
                raise ValueError(f"pages/{name}: the {tag} holds '</{tag}'")
        self.csp = f"default-src 'none'; script-src {csp_hash(script)}; style-src {csp_hash(style)}"
        fields = {"CSP": self.csp, "TITLE": html.escape(title), "STYLE": style,
                  "BODY": source(name + ".html"), "SCRIPT": script}
        # each part filled in one pass: text put in is never searched for a field again
        self.head, self.tail = (re.sub(r"__([A-Z]+)__", lambda m: fields[m.group(1)], part)
                                for part in TEMPLATE.split("__DATA__"))

    def render(self, data):
        """The HTML with data inline as JSON: '<', '>' and '&' escaped, so no text can close the
        script element, and a lone surrogate (from a file name that is not UTF-8) as its JSON
        escape, so the page is always UTF-8; NaN and infinities are refused (JSON has none)."""
        blob = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        blob = blob.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        blob = SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", blob)
        return self.head + blob + self.tail
