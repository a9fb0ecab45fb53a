"""`python -m aggregator` / `k8smon-aggregator`."""

import sys


def main(argv: list[str] | None = None) -> int:
    print("k8smon-aggregator: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
