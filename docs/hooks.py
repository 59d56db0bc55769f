"""MkDocs hook: the docstrings' Sphinx roles (``:func:`x```) rendered as plain code.

fastcorr's docstrings follow NumPy's style, whose cross-references are Sphinx roles;
mkdocstrings renders the role's name literally before the code span, so it is removed here.
"""

import re

_ROLES = "(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj)"
_ROLE = re.compile(rf":{_ROLES}:(?=<code)")
_RAW_ROLE = re.compile(rf":{_ROLES}:`([^`<]+)`")  # a role left as text (in a type's code span)


def on_page_content(html, page, config, files):
    return _RAW_ROLE.sub(r"\1", _ROLE.sub("", html))
