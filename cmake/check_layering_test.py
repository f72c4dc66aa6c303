#!/usr/bin/env python3
"""Test of check_layering.py on temporary copies of the tree: the real tree passes, and a copy
with one wrong-way include, a file in a folder the table does not know, or a cycle in the table
fails with an error naming the cause. Usage: check_layering_test.py SOURCE_DIR"""

import os
import shutil
import subprocess
import sys
import tempfile

SOURCE = os.path.abspath(sys.argv[1])
CHECK = os.path.join(SOURCE, "cmake", "check_layering.py")


def copy_tree(dest):
    for top in ("include", "src", "apps"):
        shutil.copytree(os.path.join(SOURCE, top), os.path.join(dest, top),
                        ignore=shutil.ignore_patterns("node_modules"))
    shutil.copy(os.path.join(SOURCE, "cmake", "layers.txt"), os.path.join(dest, "layers.txt"))


def run(root):
    r = subprocess.run([sys.executable, CHECK, "--root", root, "--table",
                        os.path.join(root, "layers.txt")], capture_output=True, text=True)
    return r.returncode, r.stderr


def expect(name, root, want_rc, want_text=None):
    rc, err = run(root)
    ok = rc == want_rc and (want_text is None or want_text in err)
    print(("PASS " if ok else "FAIL ") + name + f" (rc {rc})")
    if not ok:
        print(err)
    return ok


def append(path, text):
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def main():
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        clean = os.path.join(tmp, "clean")
        copy_tree(clean)
        results.append(expect("the tree as it is passes", clean, 0))

        upward = os.path.join(tmp, "upward")
        copy_tree(upward)
        append(os.path.join(upward, "src", "common", "status.cc"), '#include "server/gateway.h"\n')
        results.append(expect("common including server fails", upward, 1,
                              "src/common/status.cc:"))
        results.append(expect("...and says which layer", upward, 1,
                              "layer 'common' may not include \"server/gateway.h\""))

        sideways = os.path.join(tmp, "sideways")
        copy_tree(sideways)
        append(os.path.join(sideways, "src", "detect", "engine.cc"), '#include "audit/audit_log.h"\n')
        results.append(expect("detect including audit fails", sideways, 1,
                              "layer 'detect' may not include \"audit/audit_log.h\""))

        unknown = os.path.join(tmp, "unknown")
        copy_tree(unknown)
        os.makedirs(os.path.join(unknown, "src", "newfolder"))
        append(os.path.join(unknown, "src", "newfolder", "x.cc"), '#include "common/metrics.h"\n')
        results.append(expect("a folder missing from the table fails", unknown, 1,
                              "no layer in"))

        cycle = os.path.join(tmp, "cycle")
        copy_tree(cycle)
        with open(os.path.join(cycle, "layers.txt"), encoding="utf-8") as f:
            lines = [l for l in f if not l.startswith("common")]
        with open(os.path.join(cycle, "layers.txt"), "w", encoding="utf-8") as f:
            f.writelines(lines + ["common: moat server\n"])
        results.append(expect("a cycle in the table fails", cycle, 1, "error: cycle"))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
