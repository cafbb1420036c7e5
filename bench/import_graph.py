r"""
The project's import graph and size per file, from the source (ast, nothing is imported or run):

    python bench/import_graph.py                    # text graph + line counts + the checks below
    python bench/import_graph.py --png graph.png    # also a picture (only if matplotlib is installed)
    python bench/import_graph.py --root ../other    # another checkout

Checks (exit 1 if one fails): no file over --max-lines lines; no file over --max-share of the code; imports only
downward: every project-module import goes from a higher layer to a lower one (LAYERS below: stage scripts ->
checkpoint / engine / problems / verifier -> common). tests/ and bench/ may import anything and are counted apart.
"""
import argparse
import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# higher number = higher layer; an import must go to a strictly lower layer
LAYERS = {"records": 0, "common": 0.25, "mathexpr": 0, "symbolic": 0.5, "answers": 1, "steps": 1.5, "checkpoint": 1,
          "engine": 1, "problems": 1, "verifier": 2,
          "train_sft": 3, "sample": 3, "mine": 3, "train_dpo": 3, "evaluate": 3, "diagnose": 3, "report": 3}

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--max-lines", type=int, default=500, help="flag files longer than this (lines)")
parser.add_argument("--max-share", type=float, default=0.2, help="flag files holding more than this share of the lines")
parser.add_argument("--root", default=str(REPO), help="the checkout to read (default: this one)")
parser.add_argument("--png", default=None, help="also draw the graph to this PNG (needs matplotlib; skipped without)")


def project_imports(path, modules):
    """Names of project modules that `path` imports (top-level and inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return sorted(out & modules - {path.stem})


def draw(graph, png):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"(no matplotlib: {png} not drawn)")
        return
    rows = {}
    for m in graph:
        rows.setdefault(LAYERS.get(m, 3), []).append(m)
    xy = {m: (i - (len(ms) - 1) / 2, layer) for layer, ms in rows.items() for i, m in enumerate(sorted(ms))}
    fig, ax = plt.subplots(figsize=(10, 4))
    for m, deps in graph.items():
        for d in deps:
            ax.annotate("", xy=xy[d], xytext=xy[m], arrowprops=dict(arrowstyle="->", color="gray"))
    for m, (x, y) in xy.items():
        ax.text(x, y, m, ha="center", va="center", bbox=dict(boxstyle="round", fc="white"))
    ax.set_xlim(-3, 3), ax.set_ylim(-0.5, 2.5), ax.axis("off")
    fig.savefig(png, dpi=120, bbox_inches="tight")
    print(f"wrote {png}")


def main(argv=None):
    args = parser.parse_args(argv)
    root = Path(args.root)
    files = sorted(root.glob("*.py"))
    modules = {f.stem for f in files}
    lines = {f.stem: len(f.read_text(encoding="utf-8").splitlines()) for f in files}
    graph = {f.stem: project_imports(f, modules) for f in files}
    total = sum(lines.values())
    problems = []
    print(f"top-level modules: {len(files)} files, {total} lines\n")
    for m in sorted(graph, key=lambda m: (-LAYERS.get(m, 3), m)):
        share = lines[m] / total
        flag = []
        if lines[m] > args.max_lines:
            flag.append(f"over {args.max_lines} lines")
        if share > args.max_share:
            flag.append(f"over {args.max_share:.0%} of the code")
        for d in graph[m]:
            if m in LAYERS and LAYERS.get(d, 3) >= LAYERS[m]:
                flag.append(f"imports {d} (not a lower layer)")
        problems += [f"{m}.py: {x}" for x in flag]
        print(f"  {m + '.py':<14} {lines[m]:>5} lines {share:>5.1%}  -> {', '.join(graph[m]) or '-'}"
              + (f"   <-- {'; '.join(flag)}" if flag else ""))
    for sub in ("tests", "bench"):
        n = sum(len(f.read_text(encoding="utf-8").splitlines()) for f in (root / sub).glob("*.py"))
        print(f"  {sub + '/':<14} {n:>5} lines (not in the total)")
    if args.png:
        draw(graph, args.png)
    print("\n" + ("\n".join(f"FAIL {p}" for p in problems) if problems else
                  f"ok: no file over {args.max_lines} lines or {args.max_share:.0%} of the code; imports only downward"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
