"""How reliably a spec-driven fuzz item finds the planted demographic fault, and what it costs.

    .venv/bin/python benchmarks/fuzz_search.py [--searches 10] [--finding Atelectasis] [--max-examples 10] [--samples 32] [--delta 0.2]

Runs the `demographic-invariance` fuzz item (defaults as in tests/test_fuzz_items.py) on
`phantom-biased` with `searches` different search seeds (the same sample seeds), and on the
faithful `phantom` with the same search seeds. For each search: falsified or not, the shrunk
pair's two subgroups and their planted omission rates, the examples run and the images
generated. A good search finds a pair naming the most-omitted subgroup (Hispanic female, 0.56)
against one at least 0.2 below it; the faithful phantom should never be falsified.
"""

from __future__ import annotations

import argparse
import time

from pytest_synthcxr.checks.fuzz import FuzzCheck
from pytest_synthcxr.fuzz.sampler import PairedSampler, run_property
from pytest_synthcxr.models.generators.phantom import PRESETS, PhantomGenerator
from pytest_synthcxr.models.judges.phantom import PhantomJudge
from pytest_synthcxr.sampling.prompts import parse_prompt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", type=int, default=10)
    parser.add_argument("--finding", default="Atelectasis")
    parser.add_argument("--max-examples", type=int, default=10)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--delta", type=float, default=0.2)
    parser.add_argument("--biased-only", action="store_true", help="skip the faithful phantom")
    args = parser.parse_args()
    judge = PhantomJudge()
    check = FuzzCheck(
        name=f"demographic-invariance-{args.finding}", samples=args.samples, threshold=args.delta, direction="max",
        prop="demographic-invariance", finding=args.finding, max_examples=args.max_examples,
    )
    omission = PRESETS["phantom-biased"].omission_named
    for preset in ("phantom-biased",) if args.biased_only else ("phantom-biased", "phantom"):
        falsified = named_worst = 0
        examples, images, seconds = [], [], []
        for search in range(args.searches):
            sampler = PairedSampler(PhantomGenerator(preset), judge, 0)
            t0 = time.perf_counter()
            outcome = run_property(check, sampler, confidence=0.95, seed=search)
            seconds.append(time.perf_counter() - t0)
            examples.append(outcome.examples)
            images.append(sampler.generated)
            line = f"{preset} search {search}: {outcome.examples} examples, {sampler.generated} images, {seconds[-1]:.1f}s"
            if outcome.falsified is not None:
                falsified += 1
                pair = outcome.falsified.pair
                a, b = parse_prompt(pair.base.text), parse_prompt(pair.changed.text)
                groups = [f"{p.sex}/{p.race}" for p in (a, b)]
                named_worst += max(omission[g] for g in groups) == max(omission.values())
                d = outcome.falsified.judged.comparison.difference.value
                line += f"; falsified: {pair.base.text!r} vs {pair.changed.text!r} ({groups[0]} {omission[groups[0]]} vs {groups[1]} {omission[groups[1]]}, difference {d:+.3f})"
            print(line, flush=True)
        print(
            f"== {preset}: falsified {falsified}/{args.searches} (naming the most-omitted subgroup: {named_worst}); "
            f"median {sorted(examples)[len(examples) // 2]} examples, {sorted(images)[len(images) // 2]} images, "
            f"{sorted(seconds)[len(seconds) // 2]:.1f}s per search"
        )


if __name__ == "__main__":
    main()
