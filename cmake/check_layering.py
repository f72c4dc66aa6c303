#!/usr/bin/env python3
"""Fails when an #include crosses the layering of cmake/layers.txt the wrong way.

Reads the layer table (see the comment at the top of layers.txt and docs/architecture.md),
then every `#include "dir/..."` line of include/, src/ and apps/. A file belongs to the longest
layer that prefixes its path (relative to src/ or include/, or from apps/ on); an included
"dir/file.h" belongs to the longest layer that prefixes it. A file may include its own layer,
the layers its layer names, and everything those name in turn. Test sources (x_test.cc belongs
to the layer of x) may also include the `test` layer (test/upstream's harness) and what a
`<layer>+test` line names. Errors are printed as `path:line: error: ...`.

Usage: check_layering.py --root SOURCE_DIR --table layers.txt [--stamp FILE]
On success the stamp file is written (the build's custom command depends on it).
"""

import argparse
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
SOURCE_SUFFIXES = (".h", ".hpp", ".cc", ".cpp")
TEST_FILE = re.compile(r"(_test\.cc|_test_util\.(cc|h)|(^|/)test_[a-z_]+\.(cc|h))$")


def read_table(path):
    """Returns {layer: [layers it names]} and a list of table errors."""
    table, errors = {}, []
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if ":" not in line:
                errors.append(f"{path}:{number}: error: expected 'layer: deps...', got '{line}'")
                continue
            layer, deps = line.split(":", 1)
            layer = layer.strip()
            if layer in table:
                errors.append(f"{path}:{number}: error: layer '{layer}' listed twice")
            table[layer] = deps.split()
    for layer, deps in table.items():
        if layer.endswith("+test") and layer[:-len("+test")] not in table:
            errors.append(f"{path}: error: '{layer}' is for a layer that is not in the table")
        for dep in deps:
            if dep not in table:
                errors.append(f"{path}: error: layer '{layer}' names unknown layer '{dep}'")
    return table, errors


def closure(table):
    """Every layer's reachable layers; reports cycles (a layering is a DAG)."""
    reach, errors, state = {}, [], {}

    def visit(layer, stack):
        if state.get(layer) == "done":
            return reach[layer]
        if state.get(layer) == "visiting":
            cycle = stack[stack.index(layer):] + [layer]
            errors.append("layer table: error: cycle " + " -> ".join(cycle))
            return set()
        state[layer] = "visiting"
        out = {layer}
        for dep in table.get(layer, []):
            out |= visit(dep, stack + [layer])
        state[layer] = "done"
        reach[layer] = out
        return out

    for layer in table:
        visit(layer, [])
    return reach, errors


def layer_of(path, table):
    """The longest table layer that is `path` or a folder / file stem prefix of it."""
    stem = os.path.splitext(path)[0]
    if stem.endswith("_test"):
        stem = stem[:-len("_test")]  # a test belongs with what it tests
    parts = stem.split("/")
    for n in range(len(parts), 0, -1):
        candidate = "/".join(parts[:n])
        if candidate in table:
            return candidate
    return None


def sources(root):
    """(repository-relative path, layer path) of every checked file."""
    for top, strip in (("include", "include/"), ("src", "src/"), ("apps", "")):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            if "node_modules" in dirpath:
                continue
            for name in sorted(files):
                if name.endswith(SOURCE_SUFFIXES):
                    rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
                    yield rel, rel[len(strip):]


def check(root, table_path):
    table, errors = read_table(table_path)
    reach, cycle_errors = closure(table)
    errors += cycle_errors
    if errors:
        return errors
    checked = 0
    for rel, layer_path in sources(root):
        layer = layer_of(layer_path, table)
        if layer is None:
            errors.append(f"{rel}:1: error: no layer in {table_path} covers this file")
            continue
        allowed = set(reach[layer]) | {"moat"}
        if TEST_FILE.search(rel):
            for extra in ("test", layer + "+test"):
                if extra in table:
                    allowed |= reach[extra]
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            for number, text in enumerate(f, 1):
                m = INCLUDE.match(text)
                if not m or "/" not in m.group(1):
                    continue  # a same-folder include ("cmd_scan.h") stays in its layer
                included = m.group(1)
                target = layer_of(included, table)
                checked += 1
                if target is None:
                    errors.append(f"{rel}:{number}: error: \"{included}\" is in no layer of "
                                  f"{table_path}")
                elif target not in allowed:
                    errors.append(f"{rel}:{number}: error: layer '{layer}' may not include "
                                  f"\"{included}\" (layer '{target}'); allowed: "
                                  + " ".join(sorted(allowed)))
    if checked == 0:
        errors.append(f"{root}: error: no #include lines found; wrong --root?")
    return errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--stamp")
    args = parser.parse_args()
    errors = check(args.root, args.table)
    if errors:
        for e in errors:
            print(e, file=sys.stderr)
        print(f"layering check failed: {len(errors)} error(s); the table is {args.table}, "
              "described in docs/architecture.md", file=sys.stderr)
        if args.stamp and os.path.exists(args.stamp):
            os.remove(args.stamp)
        return 1
    if args.stamp:
        with open(args.stamp, "w", encoding="utf-8") as f:
            f.write("ok\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
