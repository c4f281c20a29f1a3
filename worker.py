"""Kindly's worker: ``python worker.py`` runs account workflows and their activities on the task queue.

``--dev`` first starts the embedded Temporal dev server, ``--demo`` also a demo portfolio. The code
lives in ``kindly.programs.worker`` so that the installed package, ``make run`` and the tests run the
same worker; this file is the entry point a deployment starts.
"""

from kindly.programs.worker import main

if __name__ == "__main__":
    main()
