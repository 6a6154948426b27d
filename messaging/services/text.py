"""What text may be stored: one rule for the API's JSON, the dashboard's forms and the services behind both.

Text must be encodable as UTF-8 (JSON's \\u escapes can carry a lone surrogate such as \\ud800, which Python
keeps in a str and the database driver then refuses, mid-request) and hold no NUL character (PostgreSQL's
text cannot; Django's form fields refuse it already). `problem` says what is wrong, `problem_at` where in
parsed JSON.
"""

from __future__ import annotations

LONE_SURROGATE = "is not valid Unicode text: it contains a lone surrogate (such as \\ud800)."
NUL = "must not contain NUL (\\u0000) characters."


def problem(value: str) -> str:
    """Why `value` cannot be stored as text, or ""."""
    if "\x00" in value:
        return NUL
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return LONE_SURROGATE
    return ""


def problem_at(value, path: tuple = ()) -> tuple[tuple, str] | None:
    """The first string in parsed JSON (or any nest of dicts and lists) that cannot be stored: the path of
    keys and indexes to it and what is wrong, or None. A bad key is blamed on the object that holds it."""
    if isinstance(value, str):
        return (path, found) if (found := problem(value)) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and (found := problem(key)):
                return path, found
            if (bad := problem_at(item, (*path, key))) is not None:
                return bad
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if (bad := problem_at(item, (*path, index))) is not None:
                return bad
    return None


def field_path(path: tuple) -> str:
    """The name of a place in a JSON body: ("options", 1) is "options[1]", ("a", "b") "a.b", () "body"."""
    if not path:
        return "body"
    name = str(path[0])
    for part in path[1:]:
        name += f"[{part}]" if isinstance(part, int) else f".{part}"
    return name
