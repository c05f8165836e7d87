"""Start-up of a Python program inside the local sandbox (run as ``python -S boot.py MAIN ARGS``).

Not imported by lmgauge: the local sandbox reads this file's text, fills in the two values below
and drops it into the sandbox. ``-S`` skips ``site`` (the .pth files of a virtual environment cost
~25 ms per start, and an editable install would put lmgauge's own source folders on the path);
this file puts back what programs rely on: the interpreter's site-packages on ``sys.path`` and the
``exit``/``quit`` builtins. Then it tells the sandbox the interpreter is up (one byte on the ready
fd: a program that fails after this point failed by itself) and runs MAIN as ``__main__``.
"""
import sys

SITE_DIRS = []  # filled in by the sandbox
READY_FD = -1  # filled in by the sandbox


def _start():
    import builtins
    import os

    class _Quitter:
        def __init__(self, name):
            self.name = name

        def __repr__(self):
            return f"Use {self.name}() or Ctrl-D (i.e. EOF) to exit"

        def __call__(self, code=None):
            try:
                sys.stdin.close()
            except Exception:  # noqa: BLE001
                pass
            raise SystemExit(code)

    builtins.exit = _Quitter("exit")
    builtins.quit = _Quitter("quit")
    if len(sys.argv) < 2:
        sys.stderr.write("boot: no program given\n")
        raise SystemExit(2)
    main = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(main))
    sys.path.extend(d for d in SITE_DIRS if d not in sys.path)
    with open(main, "rb") as fh:
        source = fh.read()
    code = compile(source, main, "exec", dont_inherit=True)
    if READY_FD >= 0:
        try:
            os.write(READY_FD, b"R")
            os.close(READY_FD)
        except OSError:
            pass
    return code, main


def _run(code, main, g=globals()):
    keep = g["__builtins__"]
    g.clear()  # the program gets a fresh __main__, as `python MAIN` gives it
    g.update({"__name__": "__main__", "__file__": main, "__doc__": None, "__builtins__": keep, "__spec__": None,
              "__loader__": None, "__package__": None, "__cached__": None})
    exec(code, g)


_run(*_start())
