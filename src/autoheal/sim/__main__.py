"""``python -m autoheal.sim --seed N [--minutes M] [--trace out.jsonl] [--plant NAME]``
or ``--seeds A..B`` for a batch (a summary line and the "sometimes" coverage).
``--shrink`` (with ``--seed``): a failing seed's acts cut down, printed with a
ready-to-paste regression test (:mod:`autoheal.sim.shrink`).

Exit 0 when every invariant held, 1 when one failed, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from autoheal.sim.invariants import KNOWN_BUGS
from autoheal.sim.plants import PLANTS, SURVIVED
from autoheal.sim.profile import FaultProfile
from autoheal.sim.run import SOMETIMES, Outcome, run_seed

#: Set strings iterate in a per-process order unless the hash seed is fixed.
HASH_SEED = "0"


def _seeds(text: str) -> range:
    first, sep, last = text.partition("..")
    if not sep:
        raise argparse.ArgumentTypeError(f"--seeds wants A..B, got {text!r}")
    return range(int(first), int(last) + 1)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m autoheal.sim", description=__doc__)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int)
    which.add_argument("--seeds", type=_seeds, help="A..B, both included")
    p.add_argument("--minutes", type=float, default=20.0, help="virtual minutes per seed")
    p.add_argument("--trace", type=Path, help="write the JSONL trace here (--seed only)")
    p.add_argument("--plant", choices=sorted({*PLANTS, *SURVIVED}), help="switch on a planted bug")
    p.add_argument("--stop-at-first", action="store_true", help="a batch ends at its first failure")
    p.add_argument(
        "--strict", action="store_true", help="a known, unfixed real bug fails the seed too"
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="a batch's worker processes (each seed runs alone in one; the output is the same)",
    )
    p.add_argument(
        "--strict-escapes",
        action="store_true",
        help="a known escape (autoheal.sim.escapes.ALLOWED) fails the seed too",
    )
    p.add_argument(
        "--unwatched",
        action="store_true",
        help="no escape watch (faster; wall time, randomness, threads, I/O go unheard)",
    )
    p.add_argument(
        "--watch-every",
        type=int,
        default=1,
        metavar="K",
        help="a batch watches for escapes in every K-th seed only (the watch doubles a "
        "seed's wall time; K=1: every seed)",
    )
    p.add_argument(
        "--shrink",
        action="store_true",
        help="--seed only: shrink a failure's acts and print a regression test",
    )
    p.add_argument("--shrink-replays", type=int, default=300, help="replays a shrink may use")
    p.add_argument("--shrink-wall-s", type=float, default=300.0, help="seconds a shrink may use")
    return p


def _shrink(args: argparse.Namespace, trace_lines: list[bytes], first: dict[str, object]) -> None:
    from autoheal.sim.script import script_of_trace
    from autoheal.sim.shrink import act_literal, regression_test, shrink

    invariant = str(first["invariant"])
    found = shrink(
        script_of_trace(trace_lines),
        seed=args.seed,
        invariant=invariant,
        plant=args.plant,
        strict=args.strict,
        max_replays=args.shrink_replays,
        max_wall_s=args.shrink_wall_s,
    )
    if not found.reproduced:
        print(f"shrink: the replayed acts did not fail {invariant} again (not shrunk)")
        return
    print(
        f"shrink: {invariant}: {len(found.original)} acts cut to {len(found.script)} "
        f"in {found.replays} replays, {found.wall_s:.1f} s"
        + (" (budget spent: it may shrink further)" if found.cut_short else "")
    )
    for act in found.script:
        print("  " + act_literal(act))
    command = f"python -m autoheal.sim --seed {args.seed} --minutes {args.minutes:g}"
    command += f" --plant {args.plant}" if args.plant else ""
    command += " --strict" if args.strict else ""
    print("# ---- a regression test, to paste into tests/sim/ ----")
    print(regression_test(found, command=command + " --shrink"), end="")


def _print_escapes(allowed: Counter[str]) -> None:
    """The allowed escapes heard (autoheal.sim.escapes.ALLOWED): harmless, or known."""
    for site, n in sorted(allowed.items()):
        print(f"escape allowed, {site}: {n} call(s)")


def _print_profile(profile: FaultProfile) -> None:
    print(profile.describe(), flush=True)


def _failed(seed: int, f: dict[str, object]) -> str:
    return f"FAILED seed={seed} t={f['t']} step={f['step']} {f['invariant']}: {f['detail']}"


def _one(seed: int, watch_every: int = 1, **kw: Any) -> Outcome:
    escapes = kw.pop("escapes", True) and seed % max(1, watch_every) == 0
    return run_seed(seed, escapes=escapes, **kw)


def _batch(seeds: range, jobs: int, **kw: Any) -> Iterator[Outcome]:
    """Each seed's outcome, in seed order, whatever the number of workers.

    A seed's run depends only on its seed (a fresh ``random.Random``, trio's scheduler
    seeded from it, its own folder), so which worker runs it changes nothing; the
    workers are forked before any run, with the pinned ``PYTHONHASHSEED``.
    """
    run = functools.partial(_one, **kw)
    if jobs <= 1:
        yield from map(run, seeds)
        return
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"))
    try:
        # Small chunks: a seed takes about a second, and the last chunks finish together.
        yield from pool.map(run, seeds, chunksize=4)
    finally:  # --stop-at-first: the seeds not begun are dropped
        pool.shutdown(wait=True, cancel_futures=True)


def main_seed(args: argparse.Namespace) -> int:
    """One seed (``--seed``): its run, and its shrink when asked."""
    out = run_seed(
        args.seed,
        args.minutes,
        plant=args.plant,
        trace_path=args.trace,
        on_profile=_print_profile,
        strict=args.strict,
        escapes=not args.unwatched,
        strict_escapes=args.strict_escapes,
    )
    for name, n in sorted(out.known.items()):
        print(f"known bug {name}: {n} violation(s) ({KNOWN_BUGS[name]})")
    _print_escapes(out.allowed_escapes)
    for f in out.failures:
        print(_failed(out.seed, f))
    print(
        f"seed={out.seed} steps={out.steps} events={out.events} "
        f"virtual_s={out.virtual_s:.0f} wall_s={out.wall_s:.2f} sha256={out.digest}"
    )
    if args.shrink and out.failures:
        _shrink(args, args.trace.read_bytes().splitlines(), out.failures[0])
    elif args.shrink:
        print("shrink: nothing failed, nothing to shrink")
    return 1 if out.failures else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.shrink and args.seed is None:
        print("--shrink wants --seed", file=sys.stderr)
        return 2
    if args.seed is not None and args.shrink and args.trace is None:
        with tempfile.TemporaryDirectory(prefix="autoheal-shrink-") as tmp:
            args.trace = Path(tmp) / "trace.jsonl"  # the shrink starts from the trace's acts
            return main_seed(args)
    if args.seed is not None:
        return main_seed(args)
    started = time.perf_counter()
    coverage: Counter[str] = Counter()
    known: Counter[str] = Counter()
    allowed: Counter[str] = Counter()
    failed: list[int] = []
    events = 0
    virtual = 0.0
    seeds = 0
    batch = _batch(
        args.seeds,
        args.jobs,
        minutes=args.minutes,
        plant=args.plant,
        strict=args.strict,
        escapes=not args.unwatched,
        strict_escapes=args.strict_escapes,
        watch_every=args.watch_every,
    )
    for out in batch:
        seed = out.seed
        known.update(out.known)
        allowed.update(out.allowed_escapes)
        seeds += 1
        events += out.events
        virtual += out.virtual_s
        coverage.update(out.coverage)
        for f in out.failures:
            print(_failed(seed, f))
        if out.failures:
            failed.append(seed)
            if args.stop_at_first:
                break
    wall = time.perf_counter() - started
    print(
        f"seeds={seeds} virtual_minutes={virtual / 60:.0f} wall_s={wall:.1f} "
        f"events_per_s={events / wall:.0f} invariant_failures={len(failed)}"
        + (f" failing_seeds={','.join(map(str, failed))}" if failed else "")
    )
    print("sometimes: " + " ".join(f"{k}={coverage[k]}" for k in SOMETIMES))
    for name, n in sorted(known.items()):
        print(f"known bug {name}: {n} violation(s) ({KNOWN_BUGS[name]})")
    _print_escapes(allowed)
    never = [k for k in SOMETIMES if not coverage[k]]
    if never:
        print("never reached: " + ", ".join(never))
    return 1 if failed else 0


if __name__ == "__main__":
    if os.environ.get("PYTHONHASHSEED") != HASH_SEED:
        os.environ["PYTHONHASHSEED"] = HASH_SEED
        os.execv(sys.executable, [sys.executable, "-m", "autoheal.sim", *sys.argv[1:]])  # noqa: S606
    sys.exit(main())
