#!/usr/bin/env python3
"""Checks that api/openapi.yaml documents exactly the routes of api/api.c.

Reads the `routes[]` table of api/api.c (lines like `{"GET", "/v1/agents", h_agent_list, ...}`)
and the `paths:` section of api/openapi.yaml (path keys indented by two spaces, operation keys
by four), by plain text scanning: standard library only, no YAML parser. Fails when a route has
no operation in the spec, or the spec has an operation that no route serves.

Usage: tests/check_openapi.py [repository root]   (default: the parent of this file's folder)
Exit status: 0 when both agree, 1 when they differ, 2 when a file cannot be read or parsed.
"""
import os
import re
import sys

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def routes_of(api_c):
    """The (METHOD, pattern) pairs of the routes[] table."""
    m = re.search(r"\broutes\s*\[\s*\]\s*=\s*\{(.*?)\n\};", api_c, re.S)
    if not m:
        raise ValueError("api/api.c: no `routes[] = { ... };` table found")
    pairs = re.findall(r'\{\s*"([A-Z]+)"\s*,\s*"(/[^"]*)"', m.group(1))
    if not pairs:
        raise ValueError("api/api.c: the routes[] table holds no route")
    return [(method, path) for method, path in pairs]


def operations_of(yaml_text):
    """The (METHOD, path) pairs under the top-level `paths:` key."""
    ops = []
    in_paths = False
    path = None
    for raw in yaml_text.splitlines():
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if indent == 0:
            in_paths = line.startswith("paths:")
            path = None
            continue
        if not in_paths:
            continue
        if indent == 2:
            m = re.match(r"""^\s{2}(['"]?)(/[^'":]*)\1\s*:\s*$""", line)
            path = m.group(2) if m else None
        elif indent == 4 and path is not None:
            m = re.match(r"^\s{4}([a-z]+)\s*:", line)
            if m and m.group(1) in METHODS:
                ops.append((m.group(1).upper(), path))
    if not ops:
        raise ValueError("api/openapi.yaml: no operation found under `paths:`")
    return ops


def fields_of(c_text):
    """Every JSON field name the C side reads or writes: keys passed to json_object_set_new,
    literal "name": fragments of the direct writer, the allowed-key lists and the config field
    tables."""
    keys = set(re.findall(r'json_object_set_new\(\w+, "([a-z_0-9]+)"', c_text))
    keys |= set(re.findall(r'"([a-z_]{2,})":', c_text))
    keys |= set(re.findall(r'\{"([a-z_]+)",\s*F_', c_text))
    keys |= set(re.findall(r'(?<!define )\b[MPT]F\((\w+)', c_text))
    for arr in re.findall(r'static const char \*const \w+\[\] = \{(.*?)\};', c_text, re.S):
        keys |= set(re.findall(r'"([a-z_]{2,})"', arr))
    return sorted(keys)


def main(argv):
    root = argv[1] if len(argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        with open(os.path.join(root, "api", "api.c"), encoding="utf-8") as f:
            routes = routes_of(f.read())
        with open(os.path.join(root, "api", "openapi.yaml"), encoding="utf-8") as f:
            spec = f.read()
            ops = operations_of(spec)
        c_text = ""
        for name in ("api.c", "config_json.c"):
            with open(os.path.join(root, "api", name), encoding="utf-8") as f:
                c_text += f.read()
    except (OSError, ValueError) as e:
        print("check_openapi: %s" % e, file=sys.stderr)
        return 2
    have = set(ops)
    served = set(routes)
    missing = [r for r in routes if r not in have]
    extra = sorted(o for o in have if o not in served)
    dups = sorted({o for o in ops if ops.count(o) > 1})
    for method, path in missing:
        print("check_openapi: route %s %s (api/api.c) is not in api/openapi.yaml" % (method, path))
    for method, path in extra:
        print("check_openapi: %s %s is in api/openapi.yaml but api/api.c serves no such route"
              % (method, path))
    for method, path in dups:
        print("check_openapi: %s %s appears more than once in api/openapi.yaml" % (method, path))
    fields = fields_of(c_text)
    undocumented = [k for k in fields if not re.search(r"\b%s\b" % re.escape(k), spec)]
    for k in undocumented:
        print("check_openapi: field %s (api/) is not in api/openapi.yaml" % k)
    failed = len(missing) + len(extra) + len(dups) + len(undocumented)
    passed = len(routes) - len(missing) + len(fields) - len(undocumented)
    print("check_openapi: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
