"""`python -m k8smon_cli` runs the `k8smon` command."""

import sys

from k8smon_cli.main import main

sys.exit(main())
