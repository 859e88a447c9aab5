"""Run one command once per seed, with "{seed}" in its arguments replaced by the seed.

    python benchmarks/scripts/seeds.py [--first-seed 0] [--skip-existing PATH] N COMMAND [ARG ...]
    python benchmarks/scripts/seeds.py 3 python -m spacy train configs/lmcrf_ner.cfg \\
        --output training/conll03/seed{seed} --training.seed {seed} ...

Everything after N is the command (so seeds.py's own options come before N).
Seeds are 0 .. N-1 (or --first-seed .. --first-seed + N-1), run one after the other; a
leading "python" is this interpreter, as in `spacy project run`. The first command that
fails stops the loop, and seeds.py exits with its status. --skip-existing PATH (with
{seed}) skips the seeds whose PATH already exists, so an interrupted run can go on.
"""

import argparse
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence

PLACEHOLDER = "{seed}"


def seeded_command(command: Sequence[str], seed: int) -> List[str]:
    """The command with every "{seed}" replaced and a leading "python" made explicit."""
    filled = [arg.replace(PLACEHOLDER, str(seed)) for arg in command]
    if filled and filled[0] in ("python", "python3"):
        filled[0] = sys.executable
    return filled


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("n_seeds", type=int)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--skip-existing", default=None, metavar="PATH")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.n_seeds < 1:
        parser.error(f"n_seeds must be >= 1, got {args.n_seeds}")
    if not args.command:
        parser.error("no command given")
    if not any(PLACEHOLDER in arg for arg in args.command):
        parser.error(f"the command has no {PLACEHOLDER}: every seed would do the same")
    for seed in range(args.first_seed, args.first_seed + args.n_seeds):
        if args.skip_existing and Path(args.skip_existing.replace(PLACEHOLDER, str(seed))).exists():
            print(
                f"seed {seed}: {args.skip_existing.replace(PLACEHOLDER, str(seed))} exists, skipped"
            )
            continue
        command = seeded_command(args.command, seed)
        print(f"seed {seed}: {' '.join(command)}", flush=True)
        status = subprocess.run(command).returncode
        if status != 0:
            print(f"seed {seed}: exited with status {status}", file=sys.stderr)
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
