"""`python -m worldpolicy …` (and `torchrun -m worldpolicy train …`) run the CLI; `run` is the `worldpolicy`
command (pyproject's [project.scripts])."""

import sys


def run() -> int:
    """`cli.main`, its import included: a Ctrl-C while the command line's modules load (before `main` handles one)
    ended with a traceback through the import; it ends as one before the command starts does."""
    try:
        from worldpolicy.cli import main
    except KeyboardInterrupt:
        print("worldpolicy: interrupted", file=sys.stderr)  # as `cli.main` says one before the command starts
        return 130
    return main()


if __name__ == "__main__":
    raise SystemExit(run())
