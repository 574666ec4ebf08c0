"""Issue 20's first criterion for standard training, per study, from each standard model's
metrics.json (so it works before a study's results.json is written).

    python scripts/standard_criterion.py runs/learnable/base/seed0 runs/learnable/base/seed2 \
        --out docs/data/learnable/standard-criterion.json

Per study: the entropy floor of H (the built-in generator's exact NLL), L(H) and L(R) above it,
the gap, and, once the study has assessed standard training, the LOSS AUROC of R against H and
the share of R extractable from a 32-token prefix. The criterion: L(H) - floor <= 0.3, the gap
>= 0.5 and the AUROC >= 0.9.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from memsinks.config import load, mixture_of


def criterion(study: Path) -> dict:
    metrics = json.loads((study / "standard" / "metrics.json").read_text())
    floor = mixture_of(load(str(study / "config.yaml"))).heldout.entropy_floor
    off = metrics["modes"]["off"]
    assessed = metrics.get("assessment", {}).get("modes", {}).get("off")
    return {"study": str(study), "floor_H": floor, "L_H": off["L_H"], "L_R": off["L_R"],
            "gap": off["gap"], "L_H_above_floor": off["L_H"][0] - floor,
            "L_R_above_floor": off["L_R"][0] - floor,
            "auroc_loss": assessed["mia"]["loss"]["auroc"] if assessed else None,
            "extractable_k32": assessed["extraction"]["R"]["32"]["rate"][0] if assessed else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", type=Path, help="study directories")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    rows = [criterion(study) for study in args.studies]
    for row in rows:
        auroc = "—" if row["auroc_loss"] is None else f"{row['auroc_loss']:.3f}"
        print(f"{row['study']}: L(H) - floor {row['L_H_above_floor']:.3f}, L(R) - floor "
              f"{row['L_R_above_floor']:.3f}, gap {row['gap'][0]:.3f}, AUROC {auroc}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
