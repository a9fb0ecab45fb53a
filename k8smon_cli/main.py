"""`k8smon top nodes|pods|namespaces|deployments`: `kubectl top`'s columns from the aggregator's API.

Exit status: 0 ok, 2 bad usage, 3 aggregator unreachable, 4 aggregator error, 5 unknown name,
130 interrupted (Ctrl-C ends --watch with 0).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TextIO

from k8smon_cli import fmt, top
from k8smon_cli.client import Client, CliError
from k8smon_common import __version__

DEFAULT_SERVER = "http://127.0.0.1:5000"
HOME, CLEAR_BELOW, HIDE_CURSOR, SHOW_CURSOR = "\x1b[H", "\x1b[J", "\x1b[?25l", "\x1b[?25h"


def _server(text: str) -> str:
    return text if "://" in text else f"http://{text}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="k8smon",
        description="Resource usage from a k8s-monitor aggregator, as kubectl top shows it.",
        epilog="Exit status: 0 ok, 2 bad usage, 3 aggregator unreachable, 4 aggregator error, "
        "5 unknown name.",
    )
    p.add_argument("--version", action="version", version=f"k8smon {__version__}")
    p.add_argument("--server", default=None, metavar="URL",
                   help=f"the aggregator (env K8SMON_SERVER; default {DEFAULT_SERVER})")
    p.add_argument("--request-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="seconds to wait for each answer (default 10)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    t = sub.add_parser("top", help="show CPU and memory (and disk, network) usage",
                       description="Show resource usage of nodes, pods, namespaces or deployments.")
    t.add_argument("kind", metavar="KIND", help="nodes, pods, namespaces or deployments (or no, po, ns...)")
    t.add_argument("name", nargs="?", help="only this one")
    t.add_argument("-n", "--namespace", default="default",
                   help="namespace of pods/deployments (default: default)")
    t.add_argument("-A", "--all-namespaces", action="store_true", help="pods/deployments of every namespace")
    t.add_argument("-l", "--selector",
                   help="label selector (k=v, k!=v, k, !k) for nodes and pods where the server serves labels")
    t.add_argument("--sort-by", choices=top.SORTS, help="cpu, memory, disk, network (descending) or name")
    t.add_argument("--containers", action="store_true", help="pods: one row per container")
    t.add_argument("-o", "--output", choices=("table", "wide", "json"), default="table")
    t.add_argument("--no-headers", action="store_true", help="table without its header line")
    t.add_argument("-w", "--watch", action="store_true", help="refresh in place every --interval seconds")
    t.add_argument("--interval", type=float, default=5.0, metavar="SECONDS",
                   help="--watch period (default 5)")
    t.add_argument("--window", type=float, default=300.0, metavar="SECONDS",
                   help="history shown in the sparkline column (wide and --watch; default 300)")
    return p


def _query(args: argparse.Namespace) -> top.Query:
    kind = top.ALIASES.get(args.kind, args.kind)
    if kind not in top.KINDS:
        raise top.UsageError(f"unknown kind {args.kind!r}: use one of {', '.join(top.KINDS)}")
    if args.containers and kind != "pods":
        raise top.UsageError("--containers applies to pods only")
    if args.selector and kind not in ("nodes", "pods"):
        raise top.UsageError("-l applies to nodes and pods")
    if args.interval <= 0 or args.window <= 0:
        raise top.UsageError("--interval and --window must be positive")
    return top.Query(
        kind=kind, name=args.name, namespace=args.namespace, all_namespaces=args.all_namespaces,
        selector=args.selector, sort_by=args.sort_by, containers=args.containers,
        history=args.output == "wide" or args.watch, window=args.window,
    )


def render(client: Client, q: top.Query, output: str, style: fmt.Style, *, headers: bool,
           err: TextIO) -> str:
    """One screenful: the table (or JSON) for `q` as it stands now."""
    docs = top.fetch(client, q)
    hist = top.histories(client, q.kind, docs, q.window) if q.history else None
    if output == "json":
        items = [dict(d) for d in docs]
        for item, series in zip(items, hist or [], strict=False):
            item["cpu_millicores_history"] = series
        return json.dumps({"kind": q.kind, "items": items}, indent=2) + "\n"
    if q.containers and docs and not top.has_containers(docs):
        print("k8smon: this aggregator serves no per-container figures; showing whole pods",
              file=err)
        q = top.Query(**{**q.__dict__, "containers": False})
    if not docs:
        scoped = q.kind in ("pods", "deployments") and not q.all_namespaces
        where = f" in {q.namespace} namespace" if scoped else ""
        print(f"No resources found{where}.", file=err)
        return ""
    header, rows = top.rows(q, docs, hist, wide=output == "wide", style=style)
    return fmt.table(header, rows, headers=headers, style=style)


def watch(client: Client, q: top.Query, args: argparse.Namespace, *, style: fmt.Style, out: TextIO,
          err: TextIO) -> int:
    """Redraw in place (cursor home, clear below) every --interval; Ctrl-C ends it with 0.

    An error before the first screen ends it with that error's code; later ones are shown in the
    title line above the last good table until the aggregator answers again.
    """
    tty = bool(getattr(out, "isatty", lambda: False)())
    last = render(client, q, args.output, style, headers=not args.no_headers, err=err)
    problem = ""
    if tty:
        out.write(HIDE_CURSOR)
    try:
        while True:
            stamp = datetime.now().strftime("%H:%M:%S")
            title = f"Every {args.interval:g}s: k8smon top {q.kind}   {client.server}   {stamp}"
            if problem:
                title += "   " + style.red(problem)
            screen = f"{style.dim(title)}\n\n{last}"
            if tty:
                out.write(HOME + screen.replace("\n", "\x1b[K\n") + CLEAR_BELOW)
            else:
                out.write(screen + "\n")
            out.flush()
            time.sleep(args.interval)
            try:
                last = render(client, q, args.output, style, headers=not args.no_headers, err=err)
                problem = ""
            except CliError as exc:
                problem = str(exc)
    except KeyboardInterrupt:
        return 0
    finally:
        if tty:
            out.write(SHOW_CURSOR)
            out.flush()


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = parser().parse_args(argv)
    style = fmt.Style(fmt.colour_enabled(out) and args.output != "json")
    try:
        server = _server(args.server or os.environ.get("K8SMON_SERVER") or DEFAULT_SERVER)
        client = Client(server, timeout=args.request_timeout)
        q = _query(args)
        if args.watch:
            return watch(client, q, args, style=style, out=out, err=err)
        out.write(render(client, q, args.output, style, headers=not args.no_headers, err=err))
        out.flush()
    except CliError as exc:
        print(f"k8smon: {exc}", file=err)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `k8smon top pods | head`
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
