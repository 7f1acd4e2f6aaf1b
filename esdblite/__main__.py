"""The esdblite command line: `serve` a node, `backup` its data, `scavenge` or `repair` it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from esdblite.app import MIB, Config, StartupError, TlsFiles, backup, event_loop_factory, serve
from esdblite.auth import ADMIN

PASSWORD_ENV = "ESDBLITE_DEFAULT_ADMIN_PASSWORD"


def secure_settings(
    args: argparse.Namespace,
) -> tuple[TlsFiles | None, tuple[tuple[str, str], ...]]:
    """Secure mode's certificate files and users from the options (None, () when insecure)."""
    cert, key = args.certificate_file, args.certificate_private_key_file
    password_file = args.default_admin_password_file
    if cert is None and key is None:
        if password_file is not None:
            raise StartupError("an admin password needs secure mode (--certificate-file)")
        return None, ()
    if cert is None or key is None:
        raise StartupError(
            "secure mode needs both --certificate-file and --certificate-private-key-file"
        )
    if password_file is not None:
        try:
            password = password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise StartupError(f"cannot read the admin password file: {exc}") from exc
    else:
        password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        raise StartupError(
            "secure mode needs the admin password "
            f"(--default-admin-password-file or ${PASSWORD_ENV})"
        )
    return TlsFiles(cert, key), ((ADMIN, password),)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="esdblite", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run a single-node EventStoreDB-compatible server")
    s.add_argument("--host", default="localhost", help="listen address (default: localhost)")
    s.add_argument("--port", type=int, default=2113, help="listen port; 0 picks a free one")
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument("--data", type=Path, help="data directory (durable)")
    where.add_argument("--memory", action="store_true", help="keep nothing after exit")
    s.add_argument("--advertise-host", help="host announced by gossip (default: localhost)")
    s.add_argument("--advertise-port", type=int, help="port announced by gossip")
    s.add_argument("--max-append-size", type=int, default=MIB, help="bytes per append")
    s.add_argument(
        "--resign-file",
        type=Path,
        help="test control: while this file exists, writes are answered NotLeader (as during "
        "an election); it holds how many (empty: one), and the last one removes it",
    )
    s.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    s.add_argument(
        "--scavenge-interval",
        type=float,
        default=0.0,
        help="seconds between scavenges of a running node (default: 0, never)",
    )
    secure = s.add_argument_group(
        "secure mode",
        "TLS with this node certificate, and users with passwords (EventStoreDB's option names); "
        f"without them the node is insecure. The admin password: a file, or ${PASSWORD_ENV}.",
    )
    secure.add_argument("--certificate-file", type=Path, help="node certificate chain (PEM)")
    secure.add_argument("--certificate-private-key-file", type=Path, help="its private key (PEM)")
    secure.add_argument(
        "--default-admin-password-file", type=Path, help="a file holding the admin password"
    )
    b = sub.add_parser("backup", help="copy a running server's data consistently")
    b.add_argument("--data", type=Path, required=True, help="the server's data directory")
    b.add_argument("dest", type=Path, help="an empty or new directory")
    sc = sub.add_parser(
        "scavenge", help="reclaim the space of events no stream read shows (server stopped)"
    )
    sc.add_argument("--data", type=Path, required=True, help="the data directory")
    r = sub.add_parser(
        "repair", help="back up, then cut the log at its first bad frame (server stopped)"
    )
    r.add_argument("--data", type=Path, required=True, help="the data directory")
    r.add_argument(
        "--backup", type=Path, help="where to copy the data first (default: DATA.backup-<time>)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "WARNING"),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Whatever the caller's umask, everything esdblite writes is private to its owner.
    os.umask(0o077)
    try:
        if args.command in ("scavenge", "repair"):
            from esdblite import maintenance

            if args.command == "repair":
                print(maintenance.repair(args.data, args.backup))
                return 0
            result, before, after = maintenance.scavenge_offline(args.data)
            print(
                f"scavenged {args.data}: {result.records} records removed; "
                f"{before} bytes on disk before, {after} after"
            )
            return 0
        if args.command == "backup":
            backup(args.data, args.dest)
            print(f"backup of {args.data} written to {args.dest}")
            return 0
        tls, users = secure_settings(args)
        config = Config(
            host=args.host,
            port=args.port,
            data_dir=None if args.memory else args.data,
            advertise_host=args.advertise_host,
            advertise_port=args.advertise_port,
            max_append_size=args.max_append_size,
            resign_file=args.resign_file,
            scavenge_interval=args.scavenge_interval,
            tls=tls,
            users=users,
        )
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(serve(config))
        return 0
    except StartupError as exc:
        print(f"esdblite: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
