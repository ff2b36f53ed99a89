"""Cluster credentials: a private CA and the certificates that mutual TLS needs.

``make_credentials(DIR)`` writes, all mode 0600 in a 0700 directory::

    ca.pem                 the cluster's CA certificate (every peer trusts it)
    node.pem  node.key     scheduler and workers
    client.pem client.key  programs that submit work (Pool / Executor)

The CA's private key is never written: nobody can sign another certificate
later, so a stolen directory cannot mint new identities (make a new directory,
and copy it everywhere, to rotate). Dask checks that a peer's certificate was
signed by the CA, not its host name (``check_hostname`` is off in Dask), so one
directory serves every machine of the cluster. Anyone who holds these files
can run code on the workers: treat the directory like an SSH private key.
"""

from __future__ import annotations

import datetime
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FILES", "Credentials", "load_credentials", "make_credentials"]

FILES = ("ca.pem", "node.pem", "node.key", "client.pem", "client.key")


@dataclass(frozen=True)
class Credentials:
    """The paths of a credentials directory's files (see the module docstring)."""

    directory: Path
    ca: Path
    node_cert: Path
    node_key: Path
    client_cert: Path
    client_key: Path

    def security(self) -> Any:
        """A ``distributed.Security`` for every role, encryption required."""
        import importlib

        security: Any = importlib.import_module("distributed").Security
        node = {"cert": str(self.node_cert), "key": str(self.node_key)}
        return security(
            tls_ca_file=str(self.ca),
            tls_scheduler_cert=node["cert"],
            tls_scheduler_key=node["key"],
            tls_worker_cert=node["cert"],
            tls_worker_key=node["key"],
            tls_client_cert=str(self.client_cert),
            tls_client_key=str(self.client_key),
            require_encryption=True,
        )

    def node_args(self) -> list[str]:
        """``dask scheduler`` / ``dask worker`` command-line flags for the node identity."""
        return [
            "--tls-ca-file",
            str(self.ca),
            "--tls-cert",
            str(self.node_cert),
            "--tls-key",
            str(self.node_key),
        ]


def load_credentials(directory: str | os.PathLike[str]) -> Credentials:
    """The credentials in ``directory``; a clear ``FileNotFoundError`` if any file is missing."""
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"cluster credentials: {str(path)!r} is not a directory; "
            f"make one with: forklift cluster credentials {path}"
        )
    missing = [name for name in FILES if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"cluster credentials in {str(path)!r} are incomplete: missing {', '.join(missing)}; "
            f"copy the whole directory made by 'forklift cluster credentials DIR'"
        )
    return Credentials(
        path,
        path / "ca.pem",
        path / "node.pem",
        path / "node.key",
        path / "client.pem",
        path / "client.key",
    )


def make_credentials(
    directory: str | os.PathLike[str], *, days: int = 825, force: bool = False
) -> Credentials:
    """Create a CA and node and client certificates in ``directory`` (made if needed).

    Refuses to overwrite existing files unless ``force``. Keys are ECDSA P-256.
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise ImportError(
            "making cluster credentials needs the 'cryptography' package: pip install 'forklift[cluster]'"
        ) from None
    path = Path(directory).expanduser()
    existing = [name for name in FILES if (path / name).exists()]
    if existing and not force:
        raise FileExistsError(
            f"{str(path)!r} already holds credentials ({', '.join(existing)}); "
            "pass force=True (--force) to replace them"
        )
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, stat.S_IRWXU)
    now = datetime.datetime.now(datetime.timezone.utc)
    not_before, not_after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "forklift cluster"),
                x509.NameAttribute(NameOID.COMMON_NAME, common),
            ]
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("forklift cluster CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common: str) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(common))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                # Every peer both serves and connects (workers talk to each other).
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cert.public_bytes(serialization.Encoding.PEM), key_pem

    node_cert, node_key = leaf("forklift node")
    client_cert, client_key = leaf("forklift client")
    contents = {
        "ca.pem": ca_cert.public_bytes(serialization.Encoding.PEM),
        "node.pem": node_cert,
        "node.key": node_key,
        "client.pem": client_cert,
        "client.key": client_key,
    }
    for filename, data in contents.items():
        _write_private(path / filename, data)
    return load_credentials(path)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a file only its owner can read, replacing it atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
