"""OPC UA interop server for flowd's e2e tests (asyncua, not gopcua).

Objects/Interop holds one variable of each common type (with a UInt64 at its
maximum and a ByteString that is not UTF-8), a variable with a bad
status, and a counter that increments by one every 200 ms. Objects/Twins holds
A/Motor/Temp (1.0) and B/Motor/Temp (2.0): two nodes whose parent and name are
alike. Endpoints: None (anonymous) and Basic256Sha256 + SignAndEncrypt
(username operator, password s3cret, or any X.509 user certificate). The
server certificate is created on first start in --pki. With --client-trust DIR
the server accepts only client application certificates found in DIR (DER),
and refuses others with BadCertificateUntrusted.
"""
import argparse
import asyncio
import datetime
import logging
import os

from asyncua import Server, ua
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.users import User, UserRole
from pathlib import Path
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

USERS = {"operator": "s3cret"}


class Users:
    """Anonymous sessions pass (the None endpoint); named users need their password."""

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username is None and certificate is None:
            return User(role=UserRole.User)
        if username is not None:
            return User(role=UserRole.User, name=username) if USERS.get(username) == password else None
        return User(role=UserRole.User, name="x509")  # an X.509 user token


def ensure_cert(pki: str, uri: str) -> tuple:
    os.makedirs(pki, exist_ok=True)
    cert_path, key_path = os.path.join(pki, "server_cert.der"), os.path.join(pki, "server_key.pem")
    if os.path.exists(cert_path) and os.path.exists(key_path):
        return cert_path, key_path
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flowd interop (asyncua)")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri), x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=True,
                                         data_encipherment=True, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH, x509.OID_CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.DER))
    return cert_path, key_path


async def main(port: int, pki: str, client_trust: str) -> None:
    uri = "urn:flowd:interop:server"
    server = Server(user_manager=Users())
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/")
    server.set_server_name("flowd interop (asyncua)")
    await server.set_application_uri(uri)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity, ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
    server.set_security_IDs(["Anonymous", "Username", "Basic256Sha256"])
    cert_path, key_path = ensure_cert(pki, uri)
    await server.load_certificate(cert_path)
    await server.load_private_key(key_path)
    if client_trust:
        store = TrustStore([Path(client_trust)], [])
        await store.load()
        server.set_certificate_validator(CertificateValidator(
            CertificateValidatorOptions.TRUSTED | CertificateValidatorOptions.PEER_CLIENT, store))
    ns = await server.register_namespace("urn:flowd:interop")  # 2
    obj = await server.nodes.objects.add_object(ua.NodeId("Interop", ns), ua.QualifiedName("Interop", ns))

    def sid(name: str) -> ua.NodeId:
        return ua.NodeId("Interop." + name, ns)

    counter = await obj.add_variable(sid("Counter"), "Counter", ua.Variant(0, ua.VariantType.Int32))
    await obj.add_variable(sid("Double"), "Double", ua.Variant(21.5, ua.VariantType.Double))
    await obj.add_variable(sid("Float"), "Float", ua.Variant(1.25, ua.VariantType.Float))
    await obj.add_variable(sid("Bool"), "Bool", ua.Variant(True, ua.VariantType.Boolean))
    await obj.add_variable(sid("String"), "String", ua.Variant("hello", ua.VariantType.String))
    await obj.add_variable(sid("UInt64"), "UInt64", ua.Variant(12345678901, ua.VariantType.UInt64))
    # values a float or a string of the raw bytes would destroy
    await obj.add_variable(sid("UInt64Max"), "UInt64Max", ua.Variant(18446744073709551615, ua.VariantType.UInt64))
    await obj.add_variable(sid("ByteString"), "ByteString",
                           ua.Variant(bytes([0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0x7F]), ua.VariantType.ByteString))
    await obj.add_variable(
        sid("Time"), "Time",
        ua.Variant(datetime.datetime(2026, 11, 22, 10, 0, 0, tzinfo=datetime.timezone.utc), ua.VariantType.DateTime))
    await obj.add_variable(sid("Array"), "Array", ua.Variant([1.5, 2.5, 3.5], ua.VariantType.Double))
    bad = await obj.add_variable(sid("Bad"), "Bad", ua.Variant(0.0, ua.VariantType.Double))
    await bad.write_value(ua.DataValue(ua.Variant(0.0, ua.VariantType.Double),
                                       StatusCode_=ua.StatusCode(ua.StatusCodes.BadSensorFailure)))

    twins = await server.nodes.objects.add_object(ua.NodeId("Twins", ns), ua.QualifiedName("Twins", ns))
    for name, value in (("A", 1.0), ("B", 2.0)):
        o = await twins.add_object(ua.NodeId("Twins." + name, ns), ua.QualifiedName(name, ns))
        m = await o.add_object(ua.NodeId(f"Twins.{name}.Motor", ns), ua.QualifiedName("Motor", ns))
        await m.add_variable(ua.NodeId(f"Twins.{name}.Motor.Temp", ns), ua.QualifiedName("Temp", ns),
                             ua.Variant(value, ua.VariantType.Double))

    async with server:
        n = 0
        while True:
            await asyncio.sleep(0.2)
            n += 1
            await counter.write_value(ua.Variant(n, ua.VariantType.Int32))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=14840)
    p.add_argument("--pki", default="opcua-interop-pki")
    p.add_argument("--client-trust", default="", help="accept only client certificates in this folder")
    logging.basicConfig(level=logging.WARNING)
    a = p.parse_args()
    asyncio.run(main(a.port, a.pki, a.client_trust))
