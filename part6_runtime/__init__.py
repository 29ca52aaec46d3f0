"""Part 6: a mini container runtime.

A container is an ordinary process that the kernel was asked to lie to: namespaces give it
its own PIDs, hostname, mounts and network; pivot_root gives it the image's files as ``/``;
cgroups cap its memory and processes; capabilities, no_new_privs and a seccomp filter take
away most of root's power. ``run(spec)`` does all of that in a child process, as an
ordered tuple of named setup steps (``SETUP_STEPS``), then execs the command as PID 1 of
its own PID namespace and returns its exit code (128+N when signal N killed it).
``run_bundle(dir)`` runs an OCI runtime bundle (config.json + rootfs), as ``runc run`` does.
"""

from .bundle import BundleWarning, load_bundle, run_bundle, spec_from_bundle
from .capabilities import current_capabilities
from .devices import DEFAULT_DEVICE_RULES, DOCKER_DEVICE_RULES, RUNC_ALLOWED_DEVICES, DeviceRule
from .errors import BundleError, ContainerError, RuntimeSetupError, SpecError
from .rootfs import make_busybox_rootfs
from .runtime import run, warm
from .setup import SETUP_STEPS
from .spec import (
    DOCKER_DEFAULT_CAPABILITIES,
    CapabilitySets,
    ContainerSpec,
    Limits,
    Mount,
    parse_size,
)
from .users import MAX_DB_BYTES, parse_user_db, read_image_file

__all__ = [
    "BundleError",
    "BundleWarning",
    "CapabilitySets",
    "ContainerError",
    "ContainerSpec",
    "DOCKER_DEFAULT_CAPABILITIES",
    "DEFAULT_DEVICE_RULES",
    "DOCKER_DEVICE_RULES",
    "DeviceRule",
    "Limits",
    "MAX_DB_BYTES",
    "Mount",
    "RUNC_ALLOWED_DEVICES",
    "RuntimeSetupError",
    "SETUP_STEPS",
    "SpecError",
    "current_capabilities",
    "load_bundle",
    "make_busybox_rootfs",
    "parse_size",
    "parse_user_db",
    "read_image_file",
    "run",
    "run_bundle",
    "spec_from_bundle",
    "warm",
]
