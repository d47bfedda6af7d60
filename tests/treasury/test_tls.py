"""A source reached over TLS: the treasury serves with a certificate, RemoteSource(tls=True)
checks it against the given roots; a plaintext client cannot talk to it (nor the token leak)."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from comuna_devstack.postgres import EmbeddedPostgres
from comuna_funding.sources import RemoteSource, SourceUnavailable
from tests.treasury.conftest import CURRENCY, TOKEN, TreasuryProcess, new_database, run


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "treasury.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def tls_treasury(
    embedded_postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TreasuryProcess, bytes]]:
    directory = tmp_path_factory.mktemp("tls")
    cert_file, key_file = self_signed(directory)
    process = TreasuryProcess(
        new_database(embedded_postgres),
        directory,
        extra=("--tls-cert-file", str(cert_file), "--tls-key-file", str(key_file)),
    )
    process.start()
    try:
        yield process, cert_file.read_bytes()
    finally:
        assert process.terminate() == 0, process.log()


@pytest.mark.asyncio
async def test_a_tls_source_answers_a_tls_client(tls_treasury: tuple[TreasuryProcess, bytes]) -> None:
    treasury, roots = tls_treasury
    async with RemoteSource(treasury.target, TOKEN, 10.0, tls=True, root_certificates=roots) as source:
        assert (await source.describe()).currency == CURRENCY
        held = await source.reserve("0b0e3e2c-9a35-4d53-9c3f-1d7e1f7d1a11", 10, CURRENCY, "over tls")
        assert held.amount_minor == 10


@pytest.mark.asyncio
async def test_a_plaintext_client_or_an_untrusted_certificate_gets_nowhere(
    tls_treasury: tuple[TreasuryProcess, bytes],
) -> None:
    treasury, _ = tls_treasury
    for client in (
        RemoteSource(treasury.target, TOKEN, 2.0),
        RemoteSource(treasury.target, TOKEN, 2.0, tls=True),  # system roots: our certificate is not among them
    ):
        async with client:
            with pytest.raises(SourceUnavailable) as refused:
                await client.describe()
            assert refused.value.outcome_unknown


def test_tls_files_go_together(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://x@127.0.0.1:1/x"
    token = {"COMUNA_TREASURY_TOKEN": TOKEN}
    done = run("serve", "--database-url", url, "--tls-cert-file", str(tmp_path / "c"), env=token)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "--tls-key-file" in done.stderr
