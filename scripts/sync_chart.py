"""Generate the chart's copies of what the project defines once: ``make chart-sync``.

- ``charts/llm-router/templates/crds/<crd>.yaml``: each of ``crds/*.yaml`` verbatim, behind
  ``crds.install`` and annotated ``helm.sh/resource-policy: keep`` when ``crds.keep`` (Helm never
  upgrades a chart's ``crds/`` folder, so the chart ships them as templates);
- ``charts/llm-router/templates/_rbac-rules.tpl``: the rules of ``llm_router.operator.rbac`` as named
  templates that ``rbac.yaml`` places in the ClusterRole or the per-namespace Roles.

The chart tests compare the rendered objects with these sources and name this script when they differ.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRDS = ROOT / "crds"
CHART = ROOT / "charts" / "llm-router"
CHART_CRDS = CHART / "templates" / "crds"
RBAC_RULES = CHART / "templates" / "_rbac-rules.tpl"

KEEP = ("  {{- if .Values.crds.keep }}\n"
        "  annotations:\n"
        "    helm.sh/resource-policy: keep\n"
        "  {{- end }}\n")


def crd_template(source: Path) -> str:
    """The CRD file behind ``crds.install``, with the keep annotation after its ``metadata:`` line."""
    text = source.read_text(encoding="utf-8")
    if "{{" in text or "}}" in text:
        raise ValueError(f"{source}: contains template delimiters; escape them before generating the chart copy")
    lines = text.splitlines(keepends=True)
    try:
        metadata = lines.index("metadata:\n")
    except ValueError:
        raise ValueError(f"{source}: no top-level 'metadata:' line") from None
    if any(line.startswith("  annotations:") for line in lines[metadata + 1:metadata + 4]):
        raise ValueError(f"{source}: already has annotations; merge the keep annotation by hand")
    header = (f"{{{{- /* Generated from crds/{source.name} by scripts/sync_chart.py (make chart-sync): "
              "do not edit. */}}\n{{- if .Values.crds.install }}\n")
    body = "".join(lines[:metadata + 1]) + KEEP + "".join(lines[metadata + 1:])
    return header + body + "{{- end }}\n"


def rbac_rules_template() -> str:
    """The operator's rules (``llm_router.operator.rbac``) as two named templates of YAML lists."""
    from llm_router.operator import rbac

    def rules(name: str, items: list[dict[str, object]]) -> str:
        lines = "".join(f"- {json.dumps(rule, sort_keys=True)}\n" for rule in items)
        return f'{{{{- define "{name}" -}}}}\n{lines}{{{{- end }}}}\n'

    return ("{{- /* Generated from llm_router.operator.rbac by scripts/sync_chart.py (make chart-sync): "
            "do not edit. */}}\n"
            + rules("llm-router.clusterRules", rbac.CLUSTER_RULES)
            + rules("llm-router.namespacedRules", rbac.NAMESPACED_RULES))


def generated() -> dict[Path, str]:
    """Every generated file and its content."""
    files = {CHART_CRDS / source.name: crd_template(source) for source in sorted(CRDS.glob("*.yaml"))}
    files[RBAC_RULES] = rbac_rules_template()
    return files


def main() -> int:
    files = generated()
    CHART_CRDS.mkdir(parents=True, exist_ok=True)
    for stale in set(CHART_CRDS.glob("*.yaml")) - set(files):
        stale.unlink()
        print(f"removed {stale.relative_to(ROOT)}")
    for path, content in files.items():
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
