#!/usr/bin/env python3
"""Checks that dependencies run one way (run by scripts/test.sh).

1. Crates: every `qiao-*` dependency of a crate (normal, build and dev) comes earlier in the crate
   order, the `crate-order` block of ARCHITECTURE.md. An import that runs back up the flow fails.
2. Modules: inside each crate, the modules that share a parent (the top-level modules of
   `src/`, the submodules of `src/api/`, ...) must not import each other in a cycle. An edge
   `a -> b` is a `crate::b...`, `super::b...` or `self::b...` path (in a `use` or in code) in a
   file of module `a`. A child naming its ancestors (`super::Hub`) is not an edge.
   Cycles that were there when the check came are listed in scripts/module-deps.allow
   ("CRATE PARENT: a b c", the members of one cycle); a new cycle, or one grown larger, fails.

    scripts/module-deps.py [ROOT]      check the tree (default: the repository)
    scripts/module-deps.py --self-test plant an upward import and a cycle in a scratch tree
                                       and require the check to fail on both (and pass without)
Exit status 1 on a violation.
"""

import os
import re
import sys
import tempfile

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def crate_order(root):
    text = open(os.path.join(root, "ARCHITECTURE.md"), encoding="utf-8").read()
    m = re.search(r"```crate-order\n(.*?)```", text, re.S)
    if not m:
        sys.exit("ARCHITECTURE.md: no ```crate-order block")
    return [line.split()[0] for line in m.group(1).splitlines() if line.strip()]


def crate_deps(cargo_toml):
    """qiao-* dependencies of every [*dependencies] table: (name, line number)."""
    deps, section = [], ""
    for n, line in enumerate(open(cargo_toml, encoding="utf-8"), 1):
        s = line.strip()
        if s.startswith("["):
            section = s
            continue
        if section.endswith("dependencies]"):
            m = re.match(r"qiao-([a-z0-9_-]+)\s*[.=]", s)
            if m:
                deps.append((m.group(1), n))
    return deps


def check_crates(root, order, out):
    rank = {c: i for i, c in enumerate(order)}
    ok = True
    for c in sorted(os.listdir(os.path.join(root, "crates"))):
        toml = os.path.join(root, "crates", c, "Cargo.toml")
        if not os.path.isfile(toml):
            continue
        if c not in rank:
            out.append(f"crates/{c}: not in the crate order of ARCHITECTURE.md")
            ok = False
            continue
        for d, line in crate_deps(toml):
            if d not in rank:
                out.append(f"crates/{c}/Cargo.toml:{line}: qiao-{d} is not in the crate order")
                ok = False
            elif rank[d] >= rank[c]:
                out.append(
                    f"crates/{c}/Cargo.toml:{line}: {c} depends on qiao-{d}, which comes "
                    f"after it in the crate order (imports run back up the flow)"
                )
                ok = False
    return ok


def module_files(src):
    """Module path (tuple) of every .rs file under src/ that is a module."""
    mods = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            mods[tuple(parts)] = os.path.join(dirpath, f)
    return mods


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(re.sub(r"//.*", "", line) for line in text.split("\n"))


def use_paths(text):
    """Every path a file names from `crate`, `super` or `self`: (path list, line number).
    `use crate::{a, b::{c}}` gives ["crate","a"] and ["crate","b","c"]."""
    found = []
    for m in re.finditer(r"\b(crate|super|self)((?:::(?:super|" + IDENT + r"))*)::\{", text):
        line = text.count("\n", 0, m.start()) + 1
        prefix = [m.group(1)] + [p for p in m.group(2).split("::") if p]
        depth, i, item = 1, m.end(), ""
        stack = [prefix]
        while i < len(text) and depth:
            ch = text[i]
            if ch == "{":
                stack.append(stack[-1] + [p for p in item.strip().strip(":").split("::") if p])
                item = ""
                depth += 1
            elif ch in ",}":
                p = [x for x in item.strip().split("::") if x and x not in ("self", "*")]
                p = [re.split(r"\s", x)[0] for x in p]
                if p:
                    found.append((stack[-1] + p, line))
                item = ""
                if ch == "}":
                    depth -= 1
                    stack.pop()
            else:
                item += ch
            i += 1
    for m in re.finditer(r"\b(crate|super|self)((?:::(?:super|" + IDENT + r"))+)", text):
        line = text.count("\n", 0, m.start()) + 1
        found.append(([m.group(1)] + [p for p in m.group(2).split("::") if p], line))
    return found


def resolve(module, path, mods):
    """The module a path names (the longest prefix that is a module), or None."""
    if path[0] == "crate":
        base, rest = (), path[1:]
    else:
        base = module
        rest = path
        if rest[0] == "self":
            rest = rest[1:]
        while rest and rest[0] == "super":
            base = base[:-1]
            rest = rest[1:]
    target = base
    for p in rest:
        if target + (p,) in mods:
            target = target + (p,)
        else:
            break
    return target


def sccs(nodes, edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def module_cycles(crate_dir):
    """(parent, members, example edges) of every cycle among sibling modules."""
    src = os.path.join(crate_dir, "src")
    if not os.path.isdir(src):
        return []
    mods = module_files(src)
    graph = {}  # parent -> {a: {b: where}}
    for module, path in mods.items():
        text = strip_comments(open(path, encoding="utf-8").read())
        for p, line in use_paths(text):
            target = resolve(module, p, mods)
            n = 0
            while n < min(len(module), len(target)) and module[n] == target[n]:
                n += 1
            if n == len(module) or n == len(target):
                continue  # an ancestor or a descendant: not a sibling edge
            parent = module[:n]
            a, b = module[n], target[n]
            where = f"{os.path.relpath(path, crate_dir)}:{line}"
            graph.setdefault(parent, {}).setdefault(a, {}).setdefault(b, where)
    cycles = []
    for parent, edges in sorted(graph.items()):
        nodes = set(edges) | {b for e in edges.values() for b in e}
        for comp in sccs(nodes, {a: set(e) for a, e in edges.items()}):
            if len(comp) > 1:
                ex = [
                    f"{a} -> {b} ({edges[a][b]})"
                    for a in comp
                    for b in sorted(edges.get(a, {}))
                    if b in comp
                ]
                cycles.append(("::".join(parent) or "crate", comp, ex))
    return cycles


def load_allow(root):
    allow = set()
    path = os.path.join(root, "scripts", "module-deps.allow")
    if os.path.isfile(path):
        for line in open(path, encoding="utf-8"):
            line = line.split("#")[0].strip()
            if line:
                head, members = line.split(":", 1)
                allow.add((head.strip(), frozenset(members.split())))
    return allow


def check_modules(root, out):
    allow = load_allow(root)
    used = set()
    ok = True
    for c in sorted(os.listdir(os.path.join(root, "crates"))):
        for parent, comp, ex in module_cycles(os.path.join(root, "crates", c)):
            key = (f"{c} {parent}", frozenset(comp))
            known = [k for k in allow if k[0] == key[0] and key[1] <= k[1]]
            if known:
                used.update(known)
                continue
            out.append(
                f"crates/{c} ({parent}): modules import each other in a cycle: "
                + ", ".join(comp)
                + "\n    "
                + "\n    ".join(ex)
            )
            ok = False
    for head, members in sorted(allow - used):
        print(f"note: scripts/module-deps.allow: {head}: {' '.join(sorted(members))} is no longer a cycle; delete the line")
    return ok


def check(root):
    out = []
    ok = check_crates(root, crate_order(root), out)
    ok = check_modules(root, out) and ok
    return ok, out


def self_test():
    def tree(d, upward, cycle):
        os.makedirs(os.path.join(d, "crates", "low", "src"))
        os.makedirs(os.path.join(d, "crates", "high", "src"))
        with open(os.path.join(d, "ARCHITECTURE.md"), "w") as f:
            f.write("```crate-order\nlow\nhigh\n```\n")
        with open(os.path.join(d, "crates", "low", "Cargo.toml"), "w") as f:
            f.write("[dependencies]\n" + ("qiao-high.workspace = true\n" if upward else ""))
        with open(os.path.join(d, "crates", "high", "Cargo.toml"), "w") as f:
            f.write("[dependencies]\nqiao-low.workspace = true\n")
        src = os.path.join(d, "crates", "high", "src")
        files = {
            "lib.rs": "pub mod a;\npub mod b;\n",
            "a.rs": "use crate::b::{self, B};\npub struct A;\n",
            "b.rs": "pub struct B;\n" + ("fn f() -> crate::a::A { crate::a::A }\n" if cycle else ""),
        }
        for name, text in files.items():
            with open(os.path.join(src, name), "w") as f:
                f.write(text)

    results = {}
    for upward, cycle in [(False, False), (True, False), (False, True)]:
        with tempfile.TemporaryDirectory() as d:
            tree(d, upward, cycle)
            results[(upward, cycle)] = check(d)
    clean_ok, clean_out = results[(False, False)]
    up_ok, up_out = results[(True, False)]
    cyc_ok, cyc_out = results[(False, True)]
    assert clean_ok and not clean_out, clean_out
    assert not up_ok and any("back up the flow" in o for o in up_out), up_out
    assert not cyc_ok and any("cycle: a, b" in o for o in cyc_out), cyc_out
    print("module-deps self-test: a planted upward import and a planted cycle both fail")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    ok, out = check(root)
    for o in out:
        print(o)
    if not ok:
        sys.exit(1)
    print("module-deps: crates in order, no new module cycle")


if __name__ == "__main__":
    main()
