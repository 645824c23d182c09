#!/usr/bin/env python3
"""Prints the library's module dependencies (top-level modules of src/, from `crate::` paths)
and fails on a cycle: the pipeline's modules must depend one way (docs/ARCHITECTURE.md).

    python3 scripts/module-deps.py
"""
import re
import sys
from pathlib import Path

src = Path(__file__).resolve().parent.parent / "src"
deps: dict[str, set[str]] = {}
for f in src.rglob("*.rs"):
    rel = f.relative_to(src).parts
    if rel[0] in ("cli", "main.rs", "lib.rs"):
        continue  # the binary's tools, and the crate root
    top = rel[0].removesuffix(".rs")
    text = re.sub(r"//.*", "", f.read_text())
    used = set(re.findall(r"\bcrate::([a-z_]+)", text))
    for group in re.findall(r"use crate::\{([^}]*)\}", text):
        used |= {item.strip().split("::")[0] for item in group.split(",")}
    deps.setdefault(top, set()).update(used - {top, "", "say"})

for m in sorted(deps):
    print(f"{m:10} -> {', '.join(sorted(deps[m])) or '-'}")


def reach(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for d in deps.get(todo.pop(), ()):
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


cycles = sorted(m for m in deps if m in reach(m))
if cycles:
    print(f"module-deps: import cycles through {', '.join(cycles)}", file=sys.stderr)
    sys.exit(1)
print("module-deps: no import cycle")
