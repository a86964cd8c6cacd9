"""Generated views of the architecture table (rys/gguf/arch_rules.py): the runtime patch's copy, and the
coverage table in docs/surgery.md.

vendor/llama.cpp/layer-path.patch creates `src/rys-arch-rules.h`; its text is `header_text()`. The patch's
hand-written check (rys_check_layer_path in llama-model.cpp) walks that data, so the rewriter, rys's
method choice and the patch follow the same entries. After editing the table:

    python -m rys.gguf.arch_codegen            # rewrite the header in layer-path.patch and the docs table
    python -m rys.gguf.arch_codegen --check    # exit 1 when either is out of date (a test runs this)

Only what the runtime needs is generated: which architectures are refused (and why), the fixed
index-derived rules (each with the llama_hparams field llama.cpp loaded its period into), the models
refused by a loaded value (refuse_when), and same-length rules. Index arrays, count switches and pins
bind only rewritten files (see arch_rules.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rys.gguf.arch_rules import ARCH_RULES, RUNTIME, ArchRule, describe, refusal

HEADER_PATH = "src/rys-arch-rules.h"
PATCH = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "layer-path.patch"
_RESIDUES = {"last": "RYS_LAST", "all_but_last": "RYS_ALL_BUT_LAST", "first": "RYS_FIRST",
             "all_but_first": "RYS_ALL_BUT_FIRST", "prefix": "RYS_PREFIX"}


def _c(text: str | None) -> str:
    if text is None:
        return "nullptr"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ident(arch: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in arch)


def header_text() -> str:
    lines = [
        "// rys-arch-rules.h: GENERATED from rys/gguf/arch_rules.py by `python -m rys.gguf.arch_codegen`; do not edit.",
        "// Which architectures take runtime layer paths, and what each executed position must keep (the same table",
        "// the rys rewriter follows). Read by rys_check_layer_path in llama-model.cpp.",
        "#pragma once",
        "",
        '#include "llama-hparams.h"',
        "",
        "#include <cstddef>",
        "#include <cstdint>",
        "",
        "enum rys_residues { RYS_LAST, RYS_ALL_BUT_LAST, RYS_FIRST, RYS_ALL_BUT_FIRST, RYS_PREFIX };",
        "",
        "// layer il has the property when (il % P) matches `residues` (RYS_PREFIX: il < P); P is `hparam` as",
        "// llama.cpp loaded it, else `period`; with P == 0 every layer has `when_zero`",
        "struct rys_fixed_rule {",
        "    const char *               what;",
        "    rys_residues               residues;",
        "    uint32_t                   period;",
        "    uint32_t llama_hparams::*  hparam;",
        "    bool                       when_zero;",
        "};",
        "",
        "// no path but the identity when hparam > 0",
        "struct rys_refuse_rule {",
        "    const char *               reason;",
        "    uint32_t llama_hparams::*  hparam;",
        "};",
        "",
        "struct rys_arch_rule {",
        "    const char *            arch;",
        "    const char *            refused;      // non-null: no path but the identity",
        "    const char *            same_length;  // non-null: paths must keep the physical layer count",
        "    bool                    attention_needed;  // a hybrid model: a path keeps a non-recurrent layer",
        "    const rys_fixed_rule *  fixed;",
        "    size_t                  n_fixed;",
        "    const rys_refuse_rule * refuse;",
        "    size_t                  n_refuse;",
        "};",
        "",
    ]
    entries = []
    for arch in sorted(ARCH_RULES):
        rule = ARCH_RULES[arch]
        refused = refusal(rule, arch, RUNTIME)
        fixed_name = refuse_name = "nullptr"
        fixed = [f for f in rule.fixed if RUNTIME in f.methods] if not refused else []
        refuse = [w for w in rule.refuse_when if w.hparam] if not refused else []
        if fixed:
            fixed_name = f"rys_fixed_{_ident(arch)}"
            lines.append(f"static const rys_fixed_rule {fixed_name}[] = {{")
            for f in fixed:
                p = f.pattern
                if isinstance(p.period, str) and not p.hparam:  # a metadata key, or N_LAYERS
                    raise ValueError(f"{arch}: a period read from metadata needs the llama_hparams field (hparam)")
                hparam = f"&llama_hparams::{p.hparam}" if p.hparam else "nullptr"
                period = p.period if isinstance(p.period, int) else 0
                lines.append(f"    {{ {_c(f.what)}, {_RESIDUES[p.residues]}, {period}, {hparam}, "
                             f"{'true' if p.when_zero else 'false'} }},")
            lines.append("};")
        if refuse:
            refuse_name = f"rys_refuse_{_ident(arch)}"
            lines.append(f"static const rys_refuse_rule {refuse_name}[] = {{")
            for w in refuse:
                lines.append(f"    {{ {_c(w.reason)}, &llama_hparams::{w.hparam} }},")
            lines.append("};")
        entries.append(f"    {{ {_c(arch)}, {_c(refused)}, {_c(None if refused else rule.same_length)}, "
                       f"{'true' if rule.attention_needed and not refused else 'false'}, {fixed_name}, {len(fixed)}, {refuse_name}, {len(refuse)} }},")
    lines.append("")
    lines.append("static const rys_arch_rule rys_arch_rules[] = {")
    lines += entries
    lines.append("};")
    return "\n".join(lines) + "\n"


def header_hunk(text: str) -> str:
    body = text.splitlines()
    return (f"diff --git a/{HEADER_PATH} b/{HEADER_PATH}\nnew file mode 100644\n"
            f"--- /dev/null\n+++ b/{HEADER_PATH}\n@@ -0,0 +1,{len(body)} @@\n"
            + "".join(f"+{line}\n" for line in body))


def patched_text(patch: str) -> str:
    """`patch` with its generated header replaced (or appended, the last file of the patch)."""
    marker = f"diff --git a/{HEADER_PATH} b/{HEADER_PATH}\n"
    start = patch.find(marker)
    if start < 0:
        return patch + header_hunk(header_text())
    end = patch.find("\ndiff --git ", start + len(marker))
    rest = "" if end < 0 else patch[end + 1:]
    return patch[:start] + header_hunk(header_text()) + rest


DOCS = PATCH.parents[2] / "docs" / "surgery.md"
DOCS_BEGIN = "<!-- arch-table:begin (generated by python -m rys.gguf.arch_codegen) -->"
DOCS_END = "<!-- arch-table:end -->"


def coverage() -> dict:
    """Counts of the table: accepted by the rewriter, by the runtime patch, refused (by reason)."""
    from collections import Counter

    rewrite = [a for a, r in ARCH_RULES.items() if refusal(r, a) is None]
    runtime = [a for a, r in ARCH_RULES.items() if refusal(r, a, RUNTIME) is None]
    groups = Counter()
    specific = sorted(a for a, r in ARCH_RULES.items() if r.unsupported and "{arch}" not in r.unsupported)
    for rule in ARCH_RULES.values():
        if rule.unsupported:
            groups[rule.unsupported if "{arch}" in rule.unsupported else
                   f"its layers are tied to their positions in ways no metadata describes ({', '.join(specific)}; "
                   f"each reason in the table)"] += 1
    return {"architectures": len(ARCH_RULES), "rewrite": len(rewrite), "runtime": len(runtime),
            "refused": len(ARCH_RULES) - len(rewrite), "refused_by_reason": dict(groups),
            "generic": sum(1 for r in ARCH_RULES.values() if r == ArchRule())}


def docs_table() -> str:
    c = coverage()
    summary = (f"{c['architectures']} architectures (every one llama.cpp b11434 can load): {c['rewrite']} take layer "
               f"paths with the rewriter and {c['runtime']} with the runtime patch ({c['generic']} of them with the generic "
               f"rules alone); {c['refused']} are refused:")
    lines = [DOCS_BEGIN, "", summary, ""]
    for reason, n in sorted(c["refused_by_reason"].items(), key=lambda kv: -kv[1]):
        lines.append(f"- {n}: {reason.replace('{arch} ', '').replace('{arch}', 'the model')}")
    lines += ["", "| architecture | rewrite | runtime | rules / reason |", "|---|---|---|---|"]
    for arch in sorted(ARCH_RULES):
        rule = ARCH_RULES[arch]
        rw, rt = refusal(rule, arch), refusal(rule, arch, RUNTIME)
        why = rw or rt or describe(rule)
        lines.append(f"| {arch} | {'refused' if rw else 'yes'} | {'refused' if rt else 'yes'} | {why} |")
    lines += ["", DOCS_END]
    return "\n".join(lines)


def docs_text(doc: str) -> str:
    start, end = doc.find(DOCS_BEGIN), doc.find(DOCS_END)
    if start < 0 or end < 0:
        raise ValueError(f"{DOCS} has no {DOCS_BEGIN} ... {DOCS_END} section")
    return doc[:start] + docs_table() + doc[end + len(DOCS_END):]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when layer-path.patch is out of date")
    parser.add_argument("--patch", type=Path, default=PATCH)
    parser.add_argument("--docs", type=Path, default=DOCS)
    args = parser.parse_args(argv)
    stale = 0
    for target, make in ((args.patch, patched_text), (args.docs, docs_text)):
        current = target.read_text()
        wanted = make(current)
        if wanted == current:
            continue
        if args.check:
            print(f"{target} is out of date with rys/gguf/arch_rules.py; run: python -m rys.gguf.arch_codegen",
                  file=sys.stderr)
            stale = 1
        else:
            from rys.outputs import save_text

            save_text(wanted, target)
            print(f"updated {target}")
    return stale


if __name__ == "__main__":
    sys.exit(main())
