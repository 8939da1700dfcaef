"""HTTPS on the proxy: a certificate made by the test (its own CA, a
wildcard for the preview domain), a real client (curl) that verifies it and
gets the preview page, the plain listener redirecting to HTTPS, and a
SIGHUP that loads a renewed certificate (and keeps the old one when the new
files are broken). A protected preview's cookie is Secure there."""

import json
import os
import signal
import subprocess

from prevue_e2e import Daemon, PrevueTestCase, commit_all, git, make_template_repo, primary_host, set_banner

DOMAIN = "prevue.localhost"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Https(PrevueTestCase):
    def make_ca(self):
        self.pki = os.path.join(self.scratch, "pki")
        os.makedirs(self.pki)
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                "-subj", "/CN=prevue test CA", cwd=self.pki)

    def issue(self, name, serial):
        """A wildcard certificate for the preview domain, signed by the test CA."""
        with open(os.path.join(self.pki, name + ".ext"), "w", encoding="utf-8") as f:
            f.write(f"subjectAltName=DNS:*.{DOMAIN},DNS:{DOMAIN}\nextendedKeyUsage=serverAuth\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj", f"/CN=*.{DOMAIN}",
                cwd=self.pki)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", str(serial), "-days", "2",
                "-extfile", name + ".ext", "-out", name + ".pem", cwd=self.pki)
        return os.path.join(self.pki, name + ".pem"), os.path.join(self.pki, name + ".key")

    def install(self, name):
        for ext in ("pem", "key"):
            with open(os.path.join(self.pki, f"{name}.{ext}"), "rb") as src, open(os.path.join(self.pki, f"live.{ext}"), "wb") as dst:
                dst.write(src.read())

    def curl(self, host, port, scheme="https", extra=()):
        out = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", os.path.join(self.pki, "ca.pem"),
                              "--resolve", f"{host}:{port}:127.0.0.1", "-o", "-", "-w", "\n%{http_code} %{redirect_url}",
                              *extra, f"{scheme}://{host}:{port}/"], capture_output=True, text=True, timeout=60)
        return out

    def serial_seen(self, host, port):
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", host,
                              "-CAfile", os.path.join(self.pki, "ca.pem"), "-verify_return_error"],
                             input="", capture_output=True, text=True, timeout=30)
        cert = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=out.stdout, capture_output=True, text=True, timeout=30)
        return cert.stdout.strip()

    def repo_with_branch(self, branch, banner):
        """The reference app with a pull request's branch whose page shows `banner`."""
        repo = make_template_repo(self.scratch)
        git(repo, "checkout", "-q", "-b", branch, "main")
        set_banner(repo, banner)
        commit_all(repo, branch)
        git(repo, "checkout", "-q", "main")
        return repo

    def start_daemon(self, repo, extra=None):
        """A daemon whose proxy also listens for HTTPS with the live certificate; it and its HTTPS port."""
        daemon = Daemon(self.scratch, [repo], extra=extra)
        with open(daemon.config_path, encoding="utf-8") as f:
            config = json.load(f)
        config["proxy"]["tls"] = {"listen": "127.0.0.1:0", "cert_file": os.path.join(self.pki, "live.pem"),
                                  "key_file": os.path.join(self.pki, "live.key"), "redirect_http": True}
        with open(daemon.config_path, "w", encoding="utf-8") as f:
            json.dump(config, f)
        daemon.start()
        with open(os.path.join(daemon.state_dir, "serve.json"), encoding="utf-8") as f:
            return daemon, json.load(f)["proxy_tls_port"]

    def test_a_protected_preview_over_https_gives_a_secure_cookie(self):
        self.make_ca()
        self.issue("first", 1001)
        self.install("first")
        repo = self.repo_with_branch("private", "Private over TLS")
        daemon, tls_port = self.start_daemon(repo, extra={"access": {"mode": "link"}})
        try:
            env = daemon.wait_env(1, "ready")
            host = primary_host(env)
            refused = self.curl(host, tls_port)
            self.assertTrue(refused.stdout.rstrip().endswith("403"), refused.stdout[-200:])
            self.assertNotIn("Private over TLS", refused.stdout)
            status, link = daemon.api_call("POST", f"/api/v1/environments/{env['slug']}/links", {"ttl": "1h"})
            self.assertEqual(status, 201, link)
            self.assertTrue(link["url"].startswith(f"https://{host}:{tls_port}/__prevue/link?t="), link["url"])
            jar = os.path.join(self.scratch, "cookies")
            opened = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", os.path.join(self.pki, "ca.pem"), "--resolve",
                                     f"{host}:{tls_port}:127.0.0.1", "-c", jar, "-b", jar, "-L", "-D", "-", link["url"]],
                                    capture_output=True, text=True, timeout=60)
            self.assertEqual(opened.returncode, 0, opened.stderr)
            self.assertRegex(opened.stdout, r"(?i)set-cookie: __prevue_access=[^;]+;.*; Secure")
            self.assertIn("Private over TLS", opened.stdout)  # followed to the page, with the cookie
        finally:
            daemon.stop()

    def test_verified_https_redirect_and_reload(self):
        self.make_ca()
        self.issue("first", 1001)
        self.issue("second", 2002)
        self.install("first")
        repo = self.repo_with_branch("secure", "Over TLS")
        daemon, tls_port = self.start_daemon(repo)
        try:
            env = daemon.wait_env(1, "ready")
            host = primary_host(env)
            self.assertTrue(env["url"].startswith(f"https://{host}:{tls_port}/"), env["url"])
            got = self.curl(host, tls_port)
            self.assertEqual(got.returncode, 0, got.stderr)
            self.assertIn("Over TLS", got.stdout)
            self.assertTrue(got.stdout.rstrip().endswith("200"), got.stdout[-200:])
            # Without the CA the certificate is not trusted: curl refuses (the check is real).
            untrusted = subprocess.run(["curl", "-sS", "--max-time", "20", "--resolve", f"{host}:{tls_port}:127.0.0.1",
                                        f"https://{host}:{tls_port}/"], capture_output=True, text=True, timeout=60)
            self.assertNotEqual(untrusted.returncode, 0)

            plain = self.curl(host, daemon.proxy_port, scheme="http")
            self.assertIn(f"308 https://{host}:{tls_port}/", plain.stdout)

            self.assertEqual(self.serial_seen(host, tls_port), "serial=03E9")
            # A renewal: new files, SIGHUP, new connections get the new certificate.
            self.install("second")
            daemon.process.send_signal(signal.SIGHUP)
            daemon.wait_for(lambda: "proxy.tls_reloaded" in daemon.read_log(), "the reload")
            self.assertEqual(self.serial_seen(host, tls_port), "serial=07D2")
            # Broken files: the reload fails loudly and the certificate in use stays.
            with open(os.path.join(self.pki, "live.key"), "w", encoding="utf-8") as f:
                f.write("not a key\n")
            daemon.process.send_signal(signal.SIGHUP)
            daemon.wait_for(lambda: "proxy.tls_reload_failed" in daemon.read_log(), "the failed reload")
            self.assertEqual(self.serial_seen(host, tls_port), "serial=07D2")
            again = self.curl(host, tls_port)
            self.assertIn("Over TLS", again.stdout)
        finally:
            daemon.stop()
