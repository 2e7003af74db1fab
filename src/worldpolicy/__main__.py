"""`python -m worldpolicy …` (and `torchrun -m worldpolicy train …`) run the CLI; `run` is the `worldpolicy`
command (pyproject's [project.scripts])."""

import sys

# what a Ctrl-C before the command starts prints (`cli.main` says the same: one text), here where nothing heavy is
# imported to know it
INTERRUPTED = "worldpolicy: interrupted"


def run() -> int:
    """`cli.main`, its import included: a Ctrl-C while the command line's modules load (before `main` handles one)
    ended with a traceback through the import; it ends as one before the command starts does."""
    try:
        from worldpolicy.cli import main
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    return main()


if __name__ == "__main__":
    raise SystemExit(run())
