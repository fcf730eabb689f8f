"""One rank started by the built-in launcher:
`python -m orchestrator.distributed.rank INVOCATION.json`. Runs the rank's
part (orchestrator.distributed.entry.run_rank) and turns an error into one
line on stderr, as the command line does: exit 2 for a SteersimError, 1 for
anything else, 130 when interrupted.

Rank 0 writes its pid beside the invocation file, so that the launcher can
pass Ctrl+C on to it (finish the tick, then stop every rank); the others
ignore SIGINT and stop when rank 0 says so, or when the launcher ends them."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    from orchestrator.distributed.entry import Invocation, run_rank
    from orchestrator.distributed.messages import error_line
    from orchestrator.distributed.ranks import rank_env
    from orchestrator.errors import SteersimError

    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    env = rank_env()
    if env is None or len(args) != 1:
        sys.stderr.write("usage: run by orchestrator.distributed.launch, not by hand\n")
        raise SystemExit(2)
    if env.rank == 0:
        from orchestrator.distributed.launch import RANK0_PID_FILE

        signal.signal(signal.SIGINT, signal.default_int_handler)
        Path(args[0]).with_name(RANK0_PID_FILE).write_text(str(os.getpid()), encoding="utf-8")
    try:
        inv = Invocation.from_json(Path(args[0]).read_text(encoding="utf-8"))
        code = run_rank(inv, env)
    except SteersimError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:  # one line, as for any rank failure
        sys.stderr.write(f"error: rank {env.rank}: {error_line(exc)}\n")
        raise SystemExit(1) from None
    raise SystemExit(code)


if __name__ == "__main__":
    main()
