"""The command line of ``login`` and ``logout``, and the registry flags every command that talks
to a registry takes (pull, push, build, login).

``capstone login [-u USER] [-p PASSWORD | --password-stdin] [--authfile FILE] [--tls-verify=false]
[--cert-dir DIR] [--get-login] [REGISTRY]`` checks the credentials with the registry (its token
service or Basic auth must accept them) and saves them where podman and docker read them
(``capstone.registry.credentials``); it prints ``Login Succeeded!``. Without a user name and a
password it checks the credentials already saved. A refusal is one line naming the registry,
the user and where the credentials came from; the password is never printed.
``capstone logout [--authfile FILE] (REGISTRY | --all)`` removes them.

Registry flags (as podman's): ``--tls-verify[=true|false]``, ``--cert-dir DIR``, ``--creds
USER:PASSWORD``, ``--authfile FILE``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from part1_overview import Narrator

from .errors import CapstoneError


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def add_registry_flags(p: argparse.ArgumentParser, *, creds: bool = True) -> None:
    """``--tls-verify``, ``--cert-dir``, ``--authfile`` (and ``--creds``) on a command."""
    p.add_argument("--tls-verify", type=_bool, nargs="?", const=True, default=None, metavar="true|false",
                   help="require TLS with a verified certificate (false: accept any certificate, and plain HTTP "
                        "when the registry speaks no TLS)")
    p.add_argument("--cert-dir", metavar="DIR", help="CA certificates (*.crt) and client certificates "
                   "(NAME.cert, NAME.key) for the registry, instead of the certs.d directories")
    p.add_argument("--authfile", metavar="FILE", help="the auth file to read credentials from (and login to "
                   "write them to); default $REGISTRY_AUTH_FILE, the containers auth file, the Docker config")
    if creds:
        p.add_argument("--creds", metavar="USER:PASSWORD", help="credentials for the registry")


def registry_options(args: argparse.Namespace):
    """The registry flags as a RegistryOptions; None when none was given (the defaults), so a
    build that talks to no registry does not import the client to say so."""
    values = {name: getattr(args, name, None) for name in ("tls_verify", "cert_dir", "creds", "authfile")}
    if all(v is None for v in values.values()):
        return None
    from .registry import RegistryOptions

    return RegistryOptions(**values)


def registry_name(text: str) -> str:
    """``https://host:5000/v2/`` or ``host:5000/some/repo`` -> ``host:5000`` (docker and podman
    accept both); ``docker.io`` for Docker Hub's names."""
    for scheme in ("https://", "http://"):
        text = text.removeprefix(scheme)
    host = text.split("/", 1)[0]
    if not host:
        raise CapstoneError(f"{text!r} names no registry")
    return "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM raises KeyboardInterrupt for the block, as ^C does: a pull or push that is
    stopped removes what it was writing (see capstone.registry.transfer) instead of dying
    with temporary files in the store."""
    import signal  # pull, push, run: not a build's

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- login ------------------------------------------------------------------------------------------


def configure_login(p: argparse.ArgumentParser) -> None:
    p.add_argument("registry", nargs="?", default="docker.io", metavar="REGISTRY",
                   help="host[:port] of the registry (default docker.io)")
    p.add_argument("-u", "--username", metavar="USER")
    p.add_argument("-p", "--password", metavar="PASSWORD",
                   help="the password (visible to other users of this machine: prefer --password-stdin)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--get-login", action="store_true", help="print the user name saved for the registry")
    add_registry_flags(p, creds=False)


def _terminal() -> bool:
    return sys.stdin.isatty()


def run_login(args: argparse.Namespace, n: Narrator) -> int:
    from .registry import Credentials, RegistryClient, find_credentials, save_credentials

    registry = registry_name(args.registry)
    options = registry_options(args)
    if args.get_login:
        found = find_credentials(registry, authfile=args.authfile)
        if found is None:
            raise CapstoneError(f"login: not logged in to {registry}")
        n.out.write(found.username + "\n")
        n.out.flush()
        return 0
    if args.password is not None and args.password_stdin:
        raise CapstoneError("login: --password and --password-stdin are mutually exclusive")
    if args.password is None and not args.password_stdin and args.username is None:
        saved = find_credentials(registry, authfile=args.authfile)
        if saved is not None:  # as podman: check what is saved instead of asking again
            print(f"Authenticating with existing credentials for {registry}", file=sys.stderr)
            with RegistryClient(registry, options=options) as client:
                client.login(saved)
            n.out.write(f"Existing credentials are valid. Already logged in to {registry}\n")
            n.out.flush()
            return 0
    user = args.username
    if user is None:
        if args.password_stdin or not _terminal():
            raise CapstoneError("login: give the user name with -u (standard input is not a terminal)")
        user = input("Username: ").strip()
    if not user:
        raise CapstoneError("login: the user name is empty")
    if args.password_stdin:
        password = sys.stdin.read()
        password = password[:-1] if password.endswith("\n") else password
        password = password[:-1] if password.endswith("\r") else password
        source = "the command line and standard input"
    elif args.password is not None:
        print("WARNING! Using --password via the command line is insecure. Use --password-stdin.", file=sys.stderr)
        password, source = args.password, "the command line"
    elif _terminal():
        import getpass  # termios: only when a password is typed

        password, source = getpass.getpass("Password: "), "the terminal"
    else:
        raise CapstoneError("login: give the password with --password-stdin (standard input is not a terminal)")
    if not password:
        raise CapstoneError("login: the password is empty")
    creds = Credentials(user, password, source)
    with RegistryClient(registry, options=options) as client:
        client.login(creds)
    save_credentials(registry, user, password, authfile=args.authfile)
    n.out.write("Login Succeeded!\n")
    n.out.flush()
    return 0


# -- logout -----------------------------------------------------------------------------------------


def configure_logout(p: argparse.ArgumentParser) -> None:
    p.add_argument("registry", nargs="?", default=None, metavar="REGISTRY", help="host[:port] (default docker.io)")
    p.add_argument("-a", "--all", action="store_true", help="remove the credentials of every registry from the "
                   "auth file login writes to")
    p.add_argument("--authfile", metavar="FILE", help="the auth file (default as login)")


def run_logout(args: argparse.Namespace, n: Narrator) -> int:
    from .registry import login_file, remove_credentials
    from .registry.credentials import read_auth_file, write_auth_file

    if args.all:
        if args.registry:
            raise CapstoneError("logout: --all and a registry are mutually exclusive")
        path = login_file(args.authfile)
        doc = read_auth_file(path)
        if doc.get("auths"):
            doc["auths"] = {}
            write_auth_file(path, doc)
        n.out.write("Removed login credentials for all registries\n")
        n.out.flush()
        return 0
    registry = registry_name(args.registry or "docker.io")
    if not remove_credentials(registry, authfile=args.authfile):
        raise CapstoneError(f"logout: not logged in to {registry}")
    n.out.write(f"Removed login credentials for {registry}\n")
    n.out.flush()
    return 0


COMMANDS: dict = {
    "login": ("log in to a registry (credentials saved where podman and docker read them)", configure_login,
              run_login),
    "logout": ("remove the saved credentials of a registry", configure_logout, run_logout),
}
