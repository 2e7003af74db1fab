"""TLS: `serve --tls-cert/--tls-key` speaks wss:// and https:// (probes too); clients trust a self-signed certificate
(or a private CA) through `ca_file=` / `--tls-ca`, and say what to pass when it does not verify; every bad flag is named
before anything loads. The certificates are made with `cryptography` (the serve extra), each with the dates and names
its test needs; one test checks a pair made by the openssl command as docs/serving.md tells an operator to."""

from __future__ import annotations

import calendar
import json
import logging
import shutil
import signal
import socket
import ssl
import subprocess
import textwrap
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from certificates import Made, make_certificate, utc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from ports import free_port
from serving_standins import droid_request, expected_actions, http_get, metric, start_server_script

from worldpolicy.cli import main
from worldpolicy.logcapture import TEXT_FORMAT
from worldpolicy.policy import PolicyRequest
from worldpolicy.serving import RemotePolicy, ServerConfig, ServerRefusedError, UntrustedCertificateError
from worldpolicy.serving.logformat import Event, JsonFormatter
from worldpolicy.serving.server import network_urls, warn_if_open
from worldpolicy.serving.tls import ServingCertificate, certificate_validity

KEY = "robot-key-0001"
EXPIRY_METRIC = "worldpolicy_tls_cert_expiry_timestamp_seconds"


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Made]:
    """Each certificate the tests serve, by name. "server" and "other" end in 2 days (as `openssl req -x509 -days 2`
    makes them): inside the 14 days that are warned about."""
    folder = tmp_path_factory.mktemp("tls")
    now = datetime.now(UTC).replace(microsecond=0)
    ca = make_certificate(folder, "ca", utc(2020, 1, 1), utc(2099, 12, 31, 23, 59, 59), ca=True)
    return {
        "server": make_certificate(folder, "server", now, now + timedelta(days=2)),
        "other": make_certificate(folder, "other", now, now + timedelta(days=2)),
        "named": make_certificate(folder, "named", now, now + timedelta(days=2),
                       names=[x509.DNSName("robot-gpu.lan")]),
        "expired": make_certificate(folder, "expired", utc(2020, 1, 1), utc(2020, 2, 1)),
        "future": make_certificate(folder, "future", utc(2099, 1, 1), utc(2099, 12, 31, 23, 59, 59)),
        "lasting": make_certificate(folder, "lasting", utc(2020, 1, 1), utc(2099, 12, 31, 23, 59, 59)),
        "ca": ca,
        "signed": make_certificate(folder, "signed", now - timedelta(days=1), now + timedelta(days=90), issuer=ca),
    }


@pytest.fixture(scope="module")
def pems(made) -> dict[str, Path]:
    """The files by role: `cert`/`key` the server's pair, `<name>_cert`/`<name>_key` the others', `encrypted` the
    server's key under a password."""
    encrypted = made["server"].key.parent / "encrypted.key"
    encrypted.write_bytes(made["server"].private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret-pass")))
    files = {"cert": made["server"].cert, "key": made["server"].key, "encrypted": encrypted}
    for name, m in made.items():
        if name != "server":
            files |= {f"{name}_cert": m.cert, f"{name}_key": m.key}
    return files


def _trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


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
    context = _trusting(pems["cert"])
    for path, body in (("/healthz", "OK\n"), ("/readyz", "ready\n"), ("/livez", "OK\n")):
        assert http_get(tls_server.url, path, tls=context) == (200, body)
    status, text = http_get(tls_server.url, "/metrics", {"Authorization": f"Api-Key {KEY}"}, tls=context)
    assert status == 200 and "worldpolicy_requests" in text
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        http_get(tls_server.url, "/healthz")


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


def test_a_server_on_every_interface_says_so_and_gives_the_urls_for_the_network(serve, pems, caplog):
    """The URL for this machine (127.0.0.1) is no use to the robot's computer: the name and address are."""
    with caplog.at_level(logging.INFO, logger="worldpolicy.serving"):
        t = serve(host="0.0.0.0", tls_cert=str(pems["cert"]), tls_key=str(pems["key"]))
    [line] = [r.msg.fields for r in caplog.records if isinstance(r.msg, Event) and r.msg.fields["event"] == "listening"]
    port = t.server.port
    assert line["interfaces"] == "all" and line["url"] == t.url == f"wss://127.0.0.1:{port}"
    assert line["network_urls"][0] == f"wss://{socket.gethostname()}:{port}"
    assert not any(url.startswith(("wss://127.", "wss://[::1]")) for url in line["network_urls"])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="worldpolicy.serving"):
        serve(host="127.0.0.1")
    [line] = [r.msg.fields for r in caplog.records if isinstance(r.msg, Event) and r.msg.fields["event"] == "listening"]
    assert "interfaces" not in line and "network_urls" not in line


@pytest.mark.parametrize(("host", "families"), [("0.0.0.0", {"IPv4"}), ("::", {"IPv6"}), ("[::]", {"IPv6"}),
                                               ("", {"IPv4", "IPv6"})])
def test_the_network_urls_give_addresses_of_the_families_the_wildcard_listens_on(host, families):
    """asyncio binds :: IPv6-only; '' binds both."""
    name, *addresses = network_urls(host, 8000, tls=True)
    assert name == f"wss://{socket.gethostname()}:8000"
    assert {"IPv6" if "[" in url else "IPv4" for url in addresses} <= families


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
    (["--tls-cert", "{cut_cert}", "--tls-key", "{key}"],  # OpenSSL's own error named neither file
     "--tls-cert='{cut_cert}': its CERTIFICATE block does not parse (cut short or corrupt?); accepted: a PEM"),
    (["--tls-cert", "{cert}", "--tls-key", "{cut_key}"],
     "--tls-key='{cut_key}': its PRIVATE KEY block does not parse (cut short or corrupt?); accepted: a PEM"),
    (["--tls-cert", "{cert}", "--tls-key", "{other_key}"],
     "--tls-key='{other_key}' is not the private key of --tls-cert='{cert}'"),
    (["--tls-cert", "{cert}", "--tls-key", "{encrypted}"],
     "--tls-key='{encrypted}' is encrypted; accepted: an unencrypted key (openssl pkey"),
    (["--tls-cert", "{expired_cert}", "--tls-key", "{expired_key}"],
     ("--tls-cert='{expired_cert}' expired on 2020-02-01 00:00:00 UTC (valid 2020-01-01 00:00:00 UTC to 2020-02-01 "
      "00:00:00 UTC; this machine's clock says ")),
    (["--tls-cert", "{future_cert}", "--tls-key", "{future_key}"],
     ("--tls-cert='{future_cert}' is not valid until 2099-01-01 00:00:00 UTC (valid 2099-01-01 00:00:00 UTC to "
      "2099-12-31 23:59:59 UTC;")),
    # with --replicas the same checks, before Ray starts (Ray's proxy would take an encrypted key's password)
    (["--tls-cert", "{cert}", "--tls-key", "{other_key}", "--replicas", "2"],
     "--tls-key='{other_key}' is not the private key of --tls-cert='{cert}'"),
    (["--tls-cert", "{cert}", "--tls-key", "{encrypted}", "--replicas", "2"],
     "--tls-key='{encrypted}' is encrypted; accepted: an unencrypted key (openssl pkey"),
    (["--tls-cert", "{cert}", "--replicas", "2"], "--tls-cert='{cert}' needs --tls-key: give both"),
])
def test_every_bad_tls_flag_is_named_before_anything_loads(tmp_path, capsys, monkeypatch, pems, flags, error):
    """The checkpoint named does not exist: the TLS error comes first."""
    import ray

    import worldpolicy.serving.ray_serve

    monkeypatch.setattr(ray, "init", lambda *a, **kw: pytest.fail("Ray started"))
    monkeypatch.setattr(worldpolicy.serving.ray_serve, "serve_until_signal", lambda *a, **kw: pytest.fail("served"))
    cut = tmp_path / "cut.pem"  # a certificate written half-way
    cut.write_bytes(pems["cert"].read_bytes()[:120] + b"\n-----END CERTIFICATE-----\n")
    cut_key = tmp_path / "cut.key"
    cut_key.write_bytes(pems["key"].read_bytes()[:60] + b"\n-----END PRIVATE KEY-----\n")
    names = {k: str(v) for k, v in pems.items()} | {"dir": str(pems["cert"].parent), "cut_cert": str(cut),
                                                    "cut_key": str(cut_key)}
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


def test_serve_with_replicas_hands_the_checked_certificate_to_ray_serve(tmp_path, monkeypatch, pems):
    """Loaded and checked here (`tls.load_pair`, as the single server's); Serve's proxy is given the same files."""
    import worldpolicy.serving.ray_serve
    from worldpolicy.testing import make_tiny_checkpoint

    make_tiny_checkpoint(tmp_path / "never-loaded")
    calls = []
    monkeypatch.setattr(worldpolicy.serving.ray_serve, "serve_until_signal", lambda loader, **kw: calls.append(kw) or 0)
    argv = _serve(tmp_path, "--device", "cpu", "--replicas", "2", "--tls-cert", str(pems["cert"]),
                  "--tls-key", str(pems["key"]))
    assert main(argv) == 0
    [kw] = calls
    certificate = kw["certificate"]
    assert isinstance(certificate, ServingCertificate)
    assert (certificate.cert, certificate.key) == (str(pems["cert"]), str(pems["key"]))
    assert certificate.current.not_after == certificate_validity(pems["cert"].read_bytes())[1]


def test_a_failed_sighup_reload_under_serve_names_the_flags_the_user_gave(tmp_path, monkeypatch, pems):
    """A reload's error named `ServerConfig.tls_key` to someone who typed --tls-key (the start's errors named the
    flag)."""
    from worldpolicy.serving.server import PolicyServer
    from worldpolicy.testing import make_tiny_checkpoint

    make_tiny_checkpoint(tmp_path / "never-loaded")
    cert, key = _place(pems, "lasting", tmp_path)

    lines = _LogLines(JsonFormatter())

    def run(server):  # after the CLI set up its logging
        key.unlink()  # a renewal caught half-way
        logging.getLogger("worldpolicy.serving").addHandler(lines)
        try:
            return int(server.reload_tls())
        finally:
            logging.getLogger("worldpolicy.serving").removeHandler(lines)

    monkeypatch.setattr(PolicyServer, "run", run)
    assert main(_serve(tmp_path, "--device", "cpu", "--tls-cert", str(cert), "--tls-key", str(key))) == 0
    [line] = [json.loads(line) for line in lines.lines]
    assert line["event"] == "tls_reload_failed"
    assert line["error"].startswith(f"--tls-key='{key}': cannot read it (No such file or directory)")


def test_the_chain_served_is_the_one_whose_dates_were_checked_when_a_renewal_lands_while_it_loads(
        pems, tmp_path, monkeypatch):
    """The certificate file was read twice, for its dates and by OpenSSL: a renewal replacing it between the two reads
    served one certificate under another's dates (or failed, the new certificate against the key read)."""
    cert, key = _place(pems, "lasting", tmp_path)
    load = ssl.SSLContext.load_cert_chain

    def renewed_meanwhile(context, certfile, keyfile=None, password=None):
        shutil.copyfile(pems["other_cert"], cert)
        return load(context, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", renewed_meanwhile)
    certificate = ServingCertificate(cert, key)
    assert certificate.current.not_after == calendar.timegm((2099, 12, 31, 23, 59, 59))


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


# ------------------------------------------------------------------------------------------------ renewal and expiry
def _pair(pems: dict[str, Path], name: str) -> tuple[Path, Path]:
    return (pems["cert"], pems["key"]) if name == "server" else (pems[f"{name}_cert"], pems[f"{name}_key"])


def _place(pems: dict[str, Path], name: str, folder: Path) -> tuple[Path, Path]:
    """Pair `name` written over folder/served.pem and served.key, in place, as certbot or cert-manager renew."""
    served = folder / "served.pem", folder / "served.key"
    for source, target in zip(_pair(pems, name), served):
        shutil.copyfile(source, target)
    return served


def _expiry_metric(t, ca: Path) -> float:
    return metric(t, EXPIRY_METRIC, tls=_trusting(ca))


@pytest.mark.parametrize("name", ["server", "lasting", "expired", "signed"])
def test_the_validity_read_from_the_certificate_is_the_one_it_was_made_with(made, name):
    """UTCTime (to 2049) and GeneralizedTime (2050 on: the lasting one ends in 2099) both; the first certificate of a
    chain file (the signed one's, not its CA's, which ends in 2099)."""
    assert certificate_validity(made[name].cert.read_bytes()) == made[name].validity


def test_a_pair_made_as_docs_serving_md_says_loads_and_its_dates_are_what_openssl_reads(tmp_path):
    """The openssl command an operator runs (docs/serving.md): its files (PEM forms, its own date encoding) load, and
    the dates read are what openssl itself reads from them. The only test that needs the command."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command, to make the pair as an operator makes it")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "365", "-subj", "/CN=gpu-box",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    out = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-startdate", "-enddate"], check=True,
                         capture_output=True, text=True).stdout
    dates = dict(line.split("=", 1) for line in out.splitlines())
    served = ServingCertificate(cert, key)
    assert (served.current.not_before, served.current.not_after) == (
        ssl.cert_time_to_seconds(dates["notBefore"]), ssl.cert_time_to_seconds(dates["notAfter"]))


def test_a_certificate_signed_by_a_private_ca_verifies_against_the_ca(serve, pems, made):
    """The served file holds the chain (the server's certificate, then the CA's); clients are given the CA's only, and
    the expiry served is the server certificate's."""
    t = serve(tls_cert=str(pems["signed_cert"]), tls_key=str(pems["signed_key"]))
    joints = np.linspace(0, 0.6, 7)
    with RemotePolicy(t.url, ca_file=pems["ca_cert"]) as policy:
        pred = policy.act(droid_request(joints), "pick up the cup", seed=0)
        np.testing.assert_allclose(pred.actions, expected_actions(joints, "pick up the cup"), atol=1e-5)
    assert _expiry_metric(t, pems["ca_cert"]) == made["signed"].not_after.timestamp()
    with pytest.raises(UntrustedCertificateError, match="against the CA certificates in ca_file="):
        RemotePolicy(t.url, ca_file=pems["other_cert"])


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_a_renewed_pair_serves_new_handshakes_and_open_connections_stay(serve, pems, tmp_path, caplog, event_loop):
    if event_loop == "uvloop":  # uvloop runs TLS through its own code, calling the same SNI callback
        pytest.importorskip("uvloop")
    cert, key = _place(pems, "lasting", tmp_path)
    t = serve(tls_cert=str(cert), tls_key=str(key), event_loop=event_loop)
    joints = np.linspace(0, 0.6, 7)
    with RemotePolicy(t.url, ca_file=pems["lasting_cert"]) as before:
        _place(pems, "other", tmp_path)
        with caplog.at_level(logging.INFO, logger="worldpolicy.serving"):
            assert t.server.reload_tls() is True
        [line] = [r.msg.fields for r in caplog.records if r.msg.fields["event"] == "tls_reloaded"]
        assert line["cert"] == str(cert) and line["not_after"].endswith(" UTC")
        with RemotePolicy(t.url, ca_file=pems["other_cert"]) as after:
            pred = after.act(droid_request(joints), "pick up the cup", seed=0)
            np.testing.assert_allclose(pred.actions, expected_actions(joints, "pick up the cup"), atol=1e-5)
        with pytest.raises(UntrustedCertificateError):
            RemotePolicy(t.url, ca_file=pems["lasting_cert"])
        pred = before.act(droid_request(joints), "pick up the cup", seed=0)  # on the pair it was made with
        np.testing.assert_allclose(pred.actions, expected_actions(joints, "pick up the cup"), atol=1e-5)


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_the_server_sends_no_session_tickets(serve, pems, event_loop):
    """A websockets sync client (RemotePolicy) reads on a thread of its own from the TLS handshake on: the tickets it
    processed there while the other thread wrote the upgrade request lost that request now and then (the client timed
    out, "no WebSocket handshake"; the uvloop case of the renewal test failed so once, under load)."""
    if event_loop == "uvloop":
        pytest.importorskip("uvloop")
    t = serve(tls_cert=str(pems["cert"]), tls_key=str(pems["key"]), event_loop=event_loop)
    with socket.create_connection(("127.0.0.1", t.server.port), timeout=10) as raw, \
            _trusting(pems["cert"]).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := tls.recv(4096):  # past the tickets a TLS 1.3 server sends after its handshake
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200") and tls.version() == "TLSv1.3"
        assert not tls.session.has_ticket


@pytest.mark.parametrize(("renewal", "error"), [
    ("mismatched", "ServerConfig.tls_key='{key}' is not the private key of ServerConfig.tls_cert='{cert}'"),
    ("missing", "ServerConfig.tls_key='{key}': cannot read it (No such file or directory)"),
    ("expired", "ServerConfig.tls_cert='{cert}' expired on 2020-02-01 00:00:00 UTC"),
])
def test_a_bad_renewal_keeps_the_served_pair_and_logs_an_error_line(serve, pems, tmp_path, renewal, error):
    cert, key = _place(pems, "lasting", tmp_path)
    t = serve(tls_cert=str(cert), tls_key=str(key))
    if renewal == "mismatched":  # a new certificate, the old key: certbot's two files caught between writes
        shutil.copyfile(pems["other_cert"], cert)
    elif renewal == "missing":
        key.unlink()
    else:
        _place(pems, "expired", tmp_path)
    lines = {"text": _LogLines(logging.Formatter(TEXT_FORMAT)), "json": _LogLines(JsonFormatter())}
    logger = logging.getLogger("worldpolicy.serving")
    for handler in lines.values():
        logger.addHandler(handler)
    try:
        assert t.server.reload_tls() is False
    finally:
        for handler in lines.values():
            logger.removeHandler(handler)
    said = error.format(cert=cert, key=key)
    [text] = lines["text"].lines
    assert text.split(" ", 2)[2].startswith('ERROR worldpolicy.serving: {"event": "tls_reload_failed"')
    assert said in text and "valid to 2099-12-31 23:59:59 UTC" in text
    [line] = [json.loads(line) for line in lines["json"].lines]
    assert (line["level"], line["event"]) == ("ERROR", "tls_reload_failed") and said in line["error"]
    assert line["serving"] == "the certificate loaded before, valid to 2099-12-31 23:59:59 UTC"
    assert metric(t, "worldpolicy_ready", tls=_trusting(pems["lasting_cert"])) == 1.0  # the old pair still serves
    assert _expiry_metric(t, pems["lasting_cert"]) == calendar.timegm((2099, 12, 31, 23, 59, 59))


class _LogLines(logging.Handler):
    """The lines one formatter writes, kept."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_metrics_say_when_the_served_certificate_expires(serve, pems, made, tmp_path):
    cert, key = _place(pems, "lasting", tmp_path)
    t = serve(tls_cert=str(cert), tls_key=str(key))
    assert _expiry_metric(t, pems["lasting_cert"]) == calendar.timegm((2099, 12, 31, 23, 59, 59))
    _place(pems, "other", tmp_path)
    assert t.server.reload_tls()
    assert _expiry_metric(t, pems["other_cert"]) == made["other"].not_after.timestamp()
    plain = serve()
    assert "worldpolicy_tls_cert_expiry" not in http_get(plain.url, "/metrics")[1]


def test_a_certificate_ending_within_14_days_is_warned_about_at_start_and_reload(serve, pems, made, tmp_path,
                                                                                  caplog):
    def warned() -> list[dict]:
        found = [r.msg.fields for r in caplog.records if isinstance(r.msg, Event)
                 and r.msg.fields["event"] == "tls_expires_soon" and r.levelno == logging.WARNING]
        caplog.clear()
        return found

    cert, key = _place(pems, "lasting", tmp_path)
    with caplog.at_level(logging.INFO, logger="worldpolicy.serving"):
        t = serve(tls_cert=str(cert), tls_key=str(key))
        assert warned() == []
        _place(pems, "server", tmp_path)  # made for 2 days
        assert t.server.reload_tls()
        [line] = warned()
        assert 1 < line["days_left"] <= 2 and "SIGHUP" in line["detail"]
        serve(tls_cert=str(pems["other_cert"]), tls_key=str(pems["other_key"]))
        [line] = warned()
        assert line["not_after"] == time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                                  time.gmtime(made["other"].not_after.timestamp()))


SIGHUP_SCRIPT = textwrap.dedent(
    """
    import logging, sys
    sys.path.insert(0, {tests!r})
    from serving_standins import StandInPolicy
    from worldpolicy.serving import PolicyServer, ServerConfig
    logging.basicConfig(level=logging.INFO)
    config = ServerConfig(host="127.0.0.1", port={port}, tls_cert={cert!r}, tls_key={key!r})
    sys.exit(PolicyServer(StandInPolicy(), config).run())
    """
)


def test_sighup_makes_a_running_server_serve_the_renewed_pair(pems, tmp_path):
    cert, key = _place(pems, "lasting", tmp_path)
    port = free_port()
    script = tmp_path / "server.py"
    script.write_text(SIGHUP_SCRIPT.format(tests=str(Path(__file__).parent), port=port, cert=str(cert), key=str(key)))
    proc = start_server_script(script, port, tls=_trusting(pems["lasting_cert"]))
    try:
        _place(pems, "other", tmp_path)
        proc.send_signal(signal.SIGHUP)
        renewed = _trusting(pems["other_cert"])
        deadline = time.monotonic() + 30
        while True:  # the signal is handled on the server's loop, soon after
            try:
                urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=5, context=renewed)
                break
            except urllib.error.URLError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and '"event": "tls_reloaded"' in err


def test_a_tls_connection_s_last_line_names_its_peer_as_its_connect_line(serve, pems, caplog):
    """A closed TLS transport no longer knows its peer: the disconnect line said "peer": null (plain ws:// kept it)."""
    t = serve(tls_cert=str(pems["cert"]), tls_key=str(pems["key"]))
    with caplog.at_level(logging.INFO, logger="worldpolicy.serving"):
        with RemotePolicy(t.url, ca_file=pems["cert"]) as policy:
            policy.act(droid_request(np.zeros(7)), "pick up the cup", seed=0)
        deadline = time.monotonic() + 10
        while not any(isinstance(r.msg, Event) and r.msg.fields["event"] == "disconnect" for r in caplog.records):
            assert time.monotonic() < deadline, "no disconnect line"
            time.sleep(0.02)
    lines = {r.msg.fields["event"]: r.msg.fields for r in caplog.records if isinstance(r.msg, Event)}
    assert lines["connect"]["peer"].startswith("127.0.0.1:") and lines["disconnect"]["peer"] == lines["connect"]["peer"]


def test_a_certificate_openssl_loads_but_whose_dates_cannot_be_read_is_refused_naming_the_flag(pems, tmp_path, capsys):
    """A TRUSTED CERTIFICATE block (openssl x509 -trustout): OpenSSL serves it, cryptography reads no dates from it, and
    its bare error named neither the file nor the flag. The block is the certificate's DER under that label (its trust
    settings are optional), so no openssl command is needed to make it."""
    trusted = tmp_path / "trusted.pem"
    trusted.write_text(pems["cert"].read_text().replace("CERTIFICATE-----", "TRUSTED CERTIFICATE-----"))
    with pytest.raises(ValueError, match=rf"^ServerConfig\.tls_cert='{trusted}': cannot read its validity dates \(.*"
                                         r"\); accepted: a PEM certificate file \(-----BEGIN CERTIFICATE-----\)"):
        ServerConfig(tls_cert=str(trusted), tls_key=str(pems["key"]))
    assert main(["serve", "--tls-cert", str(trusted), "--tls-key", str(pems["key"])]) == 2
    assert f"--tls-cert='{trusted}': cannot read its validity dates" in capsys.readouterr().err
