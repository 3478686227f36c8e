"""``python -m service.sync``: see :mod:`service.sync.cli`."""

from service.sync.cli import run

if __name__ == "__main__":
    run()
