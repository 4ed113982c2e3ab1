#!/usr/bin/env python3
"""layers.py -- the house rules of src/, checked on the tree and the build.

1. Each folder's headers are its only door, and a folder uses only the
   folders below it: every `#include "x.h"` of src/<folder>/ must name a
   header of an allowed folder (LAYERS below; ts_config.h is generated and
   allowed everywhere, the *.pb-c.h protoc-c generates in src/export/; a
   folder's X.h.in is its generated X.h).  An include of a header another folder keeps
   private (*_int.h) is refused too.
2. No two source files call each other in a loop: the call graph is read
   from the objects of the static library (`nm`: a file that leaves a
   symbol undefined calls the file that defines it), and every strongly
   connected component must be a single file.

Run by meson (suite lint) with TS_SOURCE_ROOT and TS_BUILD_ROOT set.
Prints what it read and every violation; exits 1 on any.
"""
import os
import re
import subprocess
import sys

# folder -> the folders its files may include (itself always).  From the
# bottom up: core is the ground; proto (the exchange door, HTTP and TLS
# vocabulary) sits on it; the client front-ends, trace and cors beside each
# other above it; upstream and admin above those; the pipeline and the
# exporter; the worker (composition root); the command line on top.
LAYERS = {
    "core": [],
    "proto": ["core"],
    "trace": ["core"],
    "cors": ["core"],
    "front": ["proto", "core"],
    "upstream": ["proto", "core"],
    "export": ["trace", "proto", "core"],
    "admin": ["export", "trace", "cors", "proto", "core"],
    "pipeline": ["upstream", "export", "trace", "cors", "proto", "core"],
    "worker": ["pipeline", "admin", "export", "upstream", "front", "trace",
               "cors", "proto", "core"],
    "cli": ["worker", "pipeline", "admin", "export", "upstream", "front",
            "trace", "cors", "proto", "core"],
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def fail(msg):
    print("layers: " + msg)
    return 1


def check_includes(src):
    problems = []
    headers = {}            # basename -> folder
    files = []
    for folder in sorted(os.listdir(src)):
        d = os.path.join(src, folder)
        if not os.path.isdir(d):
            continue
        if folder not in LAYERS:
            problems.append("src/%s/ is not in the layer table" % folder)
            continue
        for name in sorted(os.listdir(d)):
            # A header generated at build time from a template of the
            # folder (core/ts_commit.h.in, meson's vcs_tag) is the
            # folder's own.
            if name.endswith(".h.in"):
                headers[name[:-len(".in")]] = folder
                continue
            if name.endswith(".h"):
                if name in headers:
                    problems.append("%s is in src/%s/ and src/%s/" %
                                    (name, headers[name], folder))
                headers[name] = folder
            if name.endswith((".c", ".h")):
                files.append((folder, name))
    n_includes = 0
    for folder, name in files:
        with open(os.path.join(src, folder, name), encoding="utf-8") as f:
            text = f.read()
        for inc in INCLUDE.findall(text):
            base = os.path.basename(inc)
            if base == "ts_config.h":
                continue
            # protoc-c's output (src/export/meson.build) is export's.
            if base.endswith(".pb-c.h") and folder == "export":
                continue
            n_includes += 1
            owner = headers.get(base)
            if owner is None:
                problems.append("src/%s/%s includes \"%s\": no such header "
                                "in src/" % (folder, name, inc))
            elif owner != folder and owner not in LAYERS[folder]:
                problems.append("src/%s/%s includes %s of src/%s/, which "
                                "%s/ may not use (it may use: %s)" %
                                (folder, name, base, owner, folder,
                                 ", ".join(LAYERS[folder]) or "nothing"))
            elif owner != folder and base.endswith("_int.h"):
                problems.append("src/%s/%s includes %s, private to src/%s/"
                                % (folder, name, base, owner))
    return files, n_includes, problems


def object_symbols(objdir):
    defined, undefined = {}, {}
    for obj in sorted(os.listdir(objdir)):
        if not obj.endswith(".o"):
            continue
        out = subprocess.run(["nm", "-P", os.path.join(objdir, obj)],
                             check=True, capture_output=True,
                             text=True).stdout
        # meson names objects <folder>_<file>.c.o
        node = obj[:-len(".c.o")] if obj.endswith(".c.o") else obj[:-2]
        defined[node], undefined[node] = set(), set()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) < 2:
                continue
            sym, kind = parts[0], parts[1]
            if kind in "TDBRGSVW" and kind.isupper():
                defined[node].add(sym)
            elif kind == "U":
                undefined[node].add(sym)
    return defined, undefined


def sccs(nodes, edges):
    """Tarjan's strongly connected components (iterative)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(sorted(comp))
    return out


def check_calls(objdir):
    defined, undefined = object_symbols(objdir)
    owner = {}
    for node, syms in defined.items():
        for s in syms:
            owner[s] = node
    edges = {n: set() for n in defined}
    n_edges = 0
    for node, syms in undefined.items():
        for s in syms:
            o = owner.get(s)
            if o is not None and o != node and o not in edges[node]:
                edges[node].add(o)
                n_edges += 1
    loops = [c for c in sccs(sorted(defined), edges) if len(c) > 1]
    problems = []
    for comp in loops:
        detail = []
        for a in comp:
            for b in comp:
                if b in edges[a]:
                    calls = sorted(s for s in undefined[a]
                                   if owner.get(s) == b)
                    detail.append("%s -> %s (%s)" % (
                        a, b, ", ".join(calls[:4]) +
                        (", ..." if len(calls) > 4 else "")))
        problems.append("files calling each other in a loop: %s\n    %s" %
                        (" ".join(comp), "\n    ".join(detail)))
    return len(defined), n_edges, problems


def main():
    root = os.environ.get("TS_SOURCE_ROOT")
    build = os.environ.get("TS_BUILD_ROOT")
    if not root or not build:
        return fail("TS_SOURCE_ROOT and TS_BUILD_ROOT must be set")
    files, n_includes, problems = check_includes(os.path.join(root, "src"))
    print("layers: read %d files of src/, %d includes" %
          (len(files), n_includes))
    objdir = os.path.join(build, "src", "libtracestitch.a.p")
    n_objs, n_edges, loop_problems = check_calls(objdir)
    print("layers: read %d objects, %d calls between files" %
          (n_objs, n_edges))
    problems += loop_problems
    # A wrong root or an empty build must fail, not pass over nothing.
    if len(files) < 60 or n_includes < 150:
        problems.append("too few files or includes read: wrong "
                        "TS_SOURCE_ROOT?")
    if n_objs < 25 or n_edges < 40:
        problems.append("too few objects or calls read: wrong "
                        "TS_BUILD_ROOT?")
    for p in problems:
        print("layers: " + p)
    print("layers: %d problems" % len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
