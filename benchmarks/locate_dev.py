"""How the locator places the development sets' pops: the share of candidates near a true pop
placed at its level, per set, for the locator's parameters given.

The data are what the locator's parameters were chosen on (``benchmarks/detection.md``,
"The locator's prior chosen on the family" and after): every candidate within 20 ms of a true
pop, judged or not, on the family's ``dev`` members with three mics (4 seeds) and the first
simulator's development sessions (seeds 7000, with artifacts). Held-out members and the
real recordings are never read here; their figures come from ``detection.py``.

Run: ``.venv/bin/python benchmarks/locate_dev.py --prior 30 --weight 0.5 --level-periods 0``
(about 2 minutes; each combination of ``--prior`` and ``--weight`` costs a second more, each
``--level-periods`` value another pass over the sessions).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import heldout  # noqa: E402
from train_gate import LABEL_WINDOW_S, first_simulator  # noqa: E402

from backpop_sense.pipeline import open_replay  # noqa: E402
from backpop_sense.pops.artifacts import GateConfig  # noqa: E402
from backpop_sense.pops.detector import DetectorConfig  # noqa: E402
from backpop_sense.pops.locate import LocatorConfig, locate  # noqa: E402
from backpop_sense.pops.stage import PopStage  # noqa: E402
from backpop_sense.session import Session  # noqa: E402


def near_pops(job: tuple[Path, float]) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Each candidate of a session within ``LABEL_WINDOW_S`` of a true pop: its level shares,
    its band background and the true level."""
    path, level_periods = job
    source = open_replay(path)
    detector = replace(DetectorConfig(), level_periods=level_periods)
    stage = PopStage(source.session.info, source.session.audio.sr, detector=detector,
                     gate=GateConfig(min_score=0), early=False)
    heard = []
    judge = stage.gate.reason
    stage.gate.reason = lambda c: heard.append(c) or judge(c)  # every candidate, as judged
    for block in source:
        stage.feed(block)
    stage.finish()
    truth = Session(path).truth()
    times, levels = truth["t"].to_numpy(float), truth["level"].astype(str).to_numpy()
    out = []
    for c in heard:
        if len(times) and np.abs(times - c.t).min() <= LABEL_WINDOW_S:
            out.append((c.level_energy, c.band_background, levels[np.abs(times - c.t).argmin()]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = LocatorConfig()
    parser.add_argument("--prior", type=float, nargs="+", default=[default.prior_per_m],
                        help="attenuation priors, per metre")
    parser.add_argument("--weight", type=float, nargs="+", default=[default.prior_weight],
                        help="the prior's weights")
    parser.add_argument("--level-periods", type=float, nargs="+",
                        default=[DetectorConfig().level_periods],
                        help="periods of the centroid the shares are measured over (0: head_s)")
    args = parser.parse_args()
    sessions = []
    for fset in heldout.SETS:
        if fset.one_mic or fset.scenarios == ("artifacts-only",):
            continue
        for config in heldout.configs("dev", fset, 4):
            sessions.append((heldout.make(heldout.folder("dev", fset, config), config),
                             fset.name))
    for path, config, name in first_simulator():
        if "artifacts-only" not in name:
            sessions.append((heldout.make(path, config), name))
    names = list(dict.fromkeys(name for _, name in sessions))
    print("share of the candidates near a dev pop placed at its level, %")
    print(f"{'periods':>7} {'prior':>5} {'weight':>6}  " + "  ".join(names)
          + "  family mean  first mean")
    for periods in args.level_periods:
        with ProcessPoolExecutor(2) as pool:
            found = list(pool.map(near_pops, [(p, periods) for p, _ in sessions]))
        for prior in args.prior:
            for weight in args.weight:
                config = LocatorConfig(prior_per_m=prior, prior_weight=weight)
                right: dict[str, list[bool]] = {n: [] for n in names}
                for (path, name), rows in zip(sessions, found, strict=True):
                    mics = Session(path).info.mic_names
                    right[name] += [locate(e, mics, background=bg, config=config).level == lv
                                    for e, bg, lv in rows]
                share = {n: 100 * float(np.mean(v)) for n, v in right.items()}
                family = [v for n, v in share.items() if not n.startswith("first")]
                first = [v for n, v in share.items() if n.startswith("first")]
                print(f"{periods:>7g} {prior:>5g} {weight:>6g}  "
                      + "  ".join(f"{share[n]:>{len(n)}.1f}" for n in names)
                      + f"  {np.mean(family):>11.1f}  {np.mean(first):>10.1f}", flush=True)


if __name__ == "__main__":
    main()
