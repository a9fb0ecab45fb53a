"""`python -m exporter` / `k8smon-exporter`."""

import sys


def main(argv: list[str] | None = None) -> int:
    print("k8smon-exporter: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
