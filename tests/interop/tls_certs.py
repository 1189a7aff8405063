"""Certificates for the TLS tests, made at test time with the openssl command (nothing secret
is committed): a CA, a server certificate for 127.0.0.1/localhost, client certificates whose
common names are user names, and a second CA nobody trusts."""
import os
import subprocess
import tempfile


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class Certificates:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="warren-tls-")
        self._ca("ca")
        self._ca("rogue-ca")
        self.server = self._issue("server", "localhost", "ca", san="DNS:localhost,IP:127.0.0.1")
        self.ca = self.path("ca.pem")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _ca(self, name):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=self.dir)

    def _issue(self, name, common_name, ca, san=None, days=2):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={common_name}", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=self.dir)
        extensions = []
        if san:
            with open(self.path(f"{name}.ext"), "w") as f:
                f.write(f"subjectAltName={san}\n")
            extensions = ["-extfile", f"{name}.ext"]
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-days", str(days), "-out", f"{name}.pem", *extensions, cwd=self.dir)
        os.chmod(self.path(f"{name}.key"), 0o600)
        return self.path(f"{name}.pem"), self.path(f"{name}.key")

    def client(self, user, ca="ca"):
        """(certificate, key) with CN=user, signed by `ca`."""
        return self._issue(f"client-{user}-{ca}", user, ca)
