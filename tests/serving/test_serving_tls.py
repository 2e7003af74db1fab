"""TLS: `serve --tls-cert/--tls-key` speaks wss:// and https:// (probes too); clients trust a self-signed certificate
through `ca_file=` / `--tls-ca`, and say what to pass when it does not verify; every bad flag is named before anything
loads."""

from __future__ import annotations

import logging
import shutil
import ssl
import subprocess
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from serving_standins import droid_request, expected_actions

from worldpolicy.cli import main
from worldpolicy.policy import PolicyRequest
from worldpolicy.serving import RemotePolicy, ServerConfig, ServerRefusedError, UntrustedCertificateError
from worldpolicy.serving.server import warn_if_open

KEY = "robot-key-0001"


def _self_signed(folder: Path, name: str, san: str = "DNS:localhost,IP:127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate and its key made by the openssl command (the `cryptography` package comes only
    with the ray extra, through google-auth)."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName={san}"], check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def pems(tmp_path_factory) -> dict[str, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = _self_signed(folder, "server")
    other_cert, other_key = _self_signed(folder, "other")
    named_cert, named_key = _self_signed(folder, "named", san="DNS:robot-gpu.lan")
    encrypted = folder / "encrypted.key"
    subprocess.run(["openssl", "pkey", "-in", str(key), "-aes256", "-passout", "pass:secret-pass", "-out",
                    str(encrypted)], check=True, capture_output=True)
    return {"cert": cert, "key": key, "other_cert": other_cert, "other_key": other_key, "encrypted": encrypted,
            "named_cert": named_cert, "named_key": named_key}


@pytest.fixture
def tls_server(serve, pems):
    return serve(api_key=KEY, tls_cert=str(pems["cert"]), tls_key=str(pems["key"]))


def test_remote_policy_over_wss_with_the_ca_file_gets_actions(tls_server, pems):
    assert tls_server.url.startswith("wss://127.0.0.1:")
    joints = np.linspace(0, 0.6, 7)
    with RemotePolicy(tls_server.url, api_key=KEY, ca_file=pems["cert"]) as policy:
        pred = policy.act(droid_request(joints, prompt="stack the cups"), "stack the cups", seed=0)
        np.testing.assert_allclose(pred.actions, expected_actions(joints, "stack the cups"), atol=1e-5)
        # act_batch's extra connections trust the same CA
        requests = [PolicyRequest(droid_request(joints), "pick up the cup", seed=i) for i in range(2)]
        assert len(policy.act_batch(requests, connections=2)) == 2


def test_a_certificate_that_does_not_verify_names_the_url_the_reason_and_the_flag(tls_server, pems):
    with pytest.raises(UntrustedCertificateError) as exc:
        RemotePolicy(tls_server.url, api_key=KEY)
    text = str(exc.value)
    assert text.startswith(f"{tls_server.url}: the server's TLS certificate does not verify against the system's CA")
    assert "self-signed certificate" in text and "ca_file=" in text and "--tls-ca FILE" in text
    against = f"against the CA certificates in ca_file='{pems['other_cert']}'"
    with pytest.raises(UntrustedCertificateError, match=against):
        RemotePolicy(tls_server.url, api_key=KEY, ca_file=pems["other_cert"])



def test_a_certificate_for_another_host_name_does_not_verify(serve, pems):
    t = serve(tls_cert=str(pems["named_cert"]), tls_key=str(pems["named_key"]))  # made for robot-gpu.lan only
    with pytest.raises(UntrustedCertificateError, match="IP address mismatch.*the name the certificate was made for"):
        RemotePolicy(t.url, ca_file=pems["named_cert"])


def test_the_wrong_scheme_says_which_one_to_use(serve, tls_server, pems):
    plain = tls_server.url.replace("wss://", "ws://")
    with pytest.raises(ServerRefusedError, match="or one serving TLS, reached at wss://"):
        RemotePolicy(plain, api_key=KEY)
    with pytest.raises(ValueError, match=r"ca_file=.* verifies a wss:// server's certificate; ws://.* is plain ws://"):
        RemotePolicy(plain, ca_file=pems["cert"], connect_now=False)
    clear = serve()
    with pytest.raises(ServerRefusedError, match=r"no TLS handshake with wss://.*is the server serving TLS"):
        RemotePolicy(clear.url.replace("ws://", "wss://"), ca_file=pems["cert"])


@pytest.mark.parametrize(("name", "why"), [("missing.pem", "No such file"), ("server.key", "PEM lib|no certificate")])
def test_a_ca_file_that_cannot_be_loaded_is_refused_before_connecting(pems, name, why):
    path = pems["cert"].parent / name
    with pytest.raises(ValueError, match=f"ca_file='{path}': cannot load it .*({why}).*accepted: a PEM file"):
        RemotePolicy("wss://127.0.0.1:9", ca_file=path, connect_now=False)


def test_probes_and_metrics_answer_over_https(tls_server, pems):
    base = tls_server.url.replace("wss://", "https://")
    context = ssl.create_default_context(cafile=str(pems["cert"]))
    for path, body in (("/healthz", b"OK\n"), ("/readyz", b"ready\n"), ("/livez", b"OK\n")):
        with urllib.request.urlopen(base + path, context=context, timeout=10) as reply:
            assert (reply.status, reply.read()) == (200, body)
    request = urllib.request.Request(base + "/metrics", headers={"Authorization": f"Api-Key {KEY}"})
    with urllib.request.urlopen(request, context=context, timeout=10) as reply:
        assert b"worldpolicy_requests" in reply.read()
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(base + "/healthz", timeout=10)


def test_the_openpi_client_works_over_wss_trusting_the_ca_through_ssl_cert_file(tls_server, pems, monkeypatch):
    pytest.importorskip("openpi_client", reason="pip install --no-deps openpi-client dm-tree")
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    monkeypatch.setenv("SSL_CERT_FILE", str(pems["cert"]))  # OpenSSL's default verify paths: read per context
    client = WebsocketClientPolicy(host=tls_server.url, api_key=KEY)
    joints = np.linspace(0, 0.6, 7)
    reply = client.infer(droid_request(joints, prompt="put the marker in the cup"))
    np.testing.assert_allclose(reply["actions"], expected_actions(joints, "put the marker in the cup"))


def test_the_listening_line_says_the_scheme_and_url(serve, pems, caplog):
    with caplog.at_level(logging.INFO, logger="worldpolicy.serving"):
        t = serve(tls_cert=str(pems["cert"]), tls_key=str(pems["key"]))
    [line] = [r.getMessage() for r in caplog.records if '"listening"' in r.getMessage()]
    assert '"scheme": "wss"' in line and f'"url": "{t.url}"' in line


@pytest.mark.parametrize(("host", "api_key", "tls", "warned"), [
    ("0.0.0.0", KEY, False, True), ("10.0.0.5", KEY, False, True), ("0.0.0.0", KEY, True, False),
    ("127.0.0.1", KEY, False, False), ("0.0.0.0", None, False, False),  # no key: the "unauthenticated" warning
])
def test_a_key_served_beyond_this_machine_without_tls_is_warned_about(caplog, host, api_key, tls, warned):
    with caplog.at_level(logging.WARNING, logger="worldpolicy.serving"):
        warn_if_open(host, api_key, tls)
    said = [r.getMessage() for r in caplog.records if '"key_in_clear"' in r.getMessage()]
    assert len(said) == warned
    assert all("clear text" in line and "--tls-cert" in line and "proxy" in line for line in said)


# ------------------------------------------------------------------------------------------------ bad flags
def _serve(tmp_path, *extra: str) -> list[str]:
    return ["serve", "--checkpoint", str(tmp_path / "never-loaded"), *extra]


@pytest.mark.parametrize(("flags", "error"), [
    (["--tls-cert", "{cert}"], "--tls-cert='{cert}' needs --tls-key: give both"),
    (["--tls-key", "{key}"], "--tls-key='{key}' needs --tls-cert: give both"),
    (["--tls-cert", "{dir}/missing.pem", "--tls-key", "{key}"],
     "--tls-cert='{dir}/missing.pem': cannot read it (No such file or directory); accepted: a PEM certificate file"),
    (["--tls-cert", "{dir}", "--tls-key", "{key}"], "--tls-cert='{dir}': cannot read it (Is a directory)"),
    (["--tls-cert", "{key}", "--tls-key", "{key}"],
     "--tls-cert='{key}' holds no PEM CERTIFICATE block (a DER file, or the other one of the pair?); accepted: a PEM"),
    (["--tls-cert", "{cert}", "--tls-key", "{cert}"], "--tls-key='{cert}' holds no PEM PRIVATE KEY block"),
    (["--tls-cert", "{cert}", "--tls-key", "{other_key}"],
     "--tls-key='{other_key}' is not the private key of --tls-cert='{cert}'"),
    (["--tls-cert", "{cert}", "--tls-key", "{encrypted}"],
     "--tls-key='{encrypted}' is encrypted; accepted: an unencrypted key (openssl pkey"),
    (["--tls-cert", "{cert}", "--tls-key", "{key}", "--replicas", "2"],
     "--tls-cert serves TLS from this process; --replicas 2 serves through Ray Serve's proxy"),
])
def test_every_bad_tls_flag_is_named_before_anything_loads(tmp_path, capsys, pems, flags, error):
    """The checkpoint named does not exist: the TLS error comes first."""
    names = {k: str(v) for k, v in pems.items()} | {"dir": str(pems["cert"].parent)}
    assert main(_serve(tmp_path, *(f.format(**names) for f in flags))) == 2
    assert f"serve: error: {error.format(**names)}" in capsys.readouterr().err


def test_serve_hands_the_certificate_to_the_server(tmp_path, monkeypatch, pems):
    from worldpolicy.serving.server import PolicyServer
    from worldpolicy.testing import make_tiny_checkpoint

    make_tiny_checkpoint(tmp_path / "never-loaded")
    seen: list[ServerConfig] = []
    monkeypatch.setattr(PolicyServer, "run", lambda self: seen.append(self.config) or 0)
    argv = _serve(tmp_path, "--device", "cpu", "--tls-cert", str(pems["cert"]), "--tls-key", str(pems["key"]))
    assert main(argv) == 0
    [config] = seen
    assert isinstance(config.ssl_context, ssl.SSLContext) and config.tls_cert == str(pems["cert"])


@pytest.mark.parametrize("command", [["sim"], ["dataset", "from-sim"]])
def test_a_tls_ca_that_cannot_be_loaded_is_named_by_its_flag(tmp_path, capsys, pems, command):
    """The client's error named `ca_file=`, the Python parameter, where the user typed --tls-ca."""
    argv = [*command, "--policy", "wss://127.0.0.1:9", "--tls-ca", str(pems["key"])]
    argv += ["--out", str(tmp_path / "out")] if command[0] == "sim" else [str(tmp_path / "ds"), "--task", "reach"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"error: --tls-ca='{pems['key']}': cannot load it" in err and "ca_file" not in err


@pytest.mark.parametrize(("policy", "error"), [
    ("ws://127.0.0.1:9", ("--tls-ca {cert}: verifies a wss:// policy server's certificate, not --policy "
                          "'ws://127.0.0.1:9': use its wss:// URL")),
    ("random", "--tls-ca {cert}: verifies a wss:// policy server's certificate, not --policy 'random'"),
])
@pytest.mark.parametrize("command", [["sim"], ["dataset", "from-sim"]])
def test_tls_ca_is_refused_where_no_wss_server_would_read_it(tmp_path, capsys, pems, command, policy, error):
    argv = [*command, "--policy", policy, "--tls-ca", str(pems["cert"])]
    argv += ["--out", str(tmp_path / "out")] if command[0] == "sim" else [str(tmp_path / "ds"), "--task", "reach"]
    assert main(argv) == 2
    assert error.format(cert=pems["cert"]) in capsys.readouterr().err
