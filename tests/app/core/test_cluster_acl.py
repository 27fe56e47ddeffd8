"""deploy/nats on a real nats-server: the node configuration parses (with TLS files in place), and the
per-companion permissions written by deploy/nats/companions.py do what deploy/acl.example does on
Mosquitto: a companion reads only its own inboxes (never '#', never another mailbox's), publishes
only its own presence, and the relay works under them."""

from __future__ import annotations

import asyncio
import datetime
import importlib.util
import os
import secrets
import subprocess
from pathlib import Path
from types import ModuleType

import aiomqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from relaykit import HOST, Phone, make_circle, run, wait_port
from testkit import require_tool

from hugapp.core.broker import free_port
from hugapp.core.envelope import presence_id, presence_topic

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "nats"


def companions() -> ModuleType:
    spec = importlib.util.spec_from_file_location("companions", DEPLOY / "companions.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hug-1.example.org")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_the_production_node_configuration_is_valid(tmp_path: Path) -> None:
    exe = require_tool("nats-server")
    cert, key = self_signed(tmp_path)
    text = (DEPLOY / "hugbutton.conf").read_text()
    for path in ("route.pem", "route-ca.pem", "fullchain.pem"):
        text = text.replace(f"/etc/nats/certs/{path}", str(cert))
    for path in ("route-key.pem", "privkey.pem"):
        text = text.replace(f"/etc/nats/certs/{path}", str(key))
    text = text.replace("/var/lib/nats/jetstream", str(tmp_path / "js"))
    (tmp_path / "node.conf").write_text(text)
    users = companions().authorization(
        [f"{secrets.token_hex(16)} {secrets.token_hex(32)} secret-{i}" for i in range(3)]
    )
    (tmp_path / "hugbutton-users.conf").write_text(users)
    proc = subprocess.run(
        [exe, "-t", "-c", str(tmp_path / "node.conf")],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "HUG_NODE": "hug-1"},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid" in proc.stdout + proc.stderr


def test_a_companion_reads_only_its_own_inboxes(tmp_path: Path) -> None:
    exe = require_tool("nats-server")
    a, b = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Kid Bobby")
    port = free_port()
    users = companions().authorization(
        [
            f"{p.me.mailbox} {presence_id(p.me.presence_key)} {pw}"
            for p, pw in ((a, "alice-pw"), (b, "bobby-pw"))
        ]
    )
    pr_a, pr_b = presence_topic(a.me.presence_key), presence_topic(b.me.presence_key)
    (tmp_path / "hugbutton-users.conf").write_text(users)
    (tmp_path / "node.conf").write_text(
        f"server_name: acl-test\nlisten: {HOST}:{free_port()}\n"
        f'jetstream {{ store_dir: "{tmp_path / "js"}" }}\n'
        f"mqtt {{ listen: {HOST}:{port} }}\ninclude hugbutton-users.conf\n"
    )
    with open(tmp_path / "nats.log", "wb") as log:
        node = subprocess.Popen([exe, "-c", str(tmp_path / "node.conf")], stdout=log, stderr=log)
    try:
        wait_port(port, 10)

        async def main() -> None:
            inbox_b = f"hug/v1/in/{b.me.mailbox}/" + "1" * 64
            inbox_a = f"hug/v1/in/{a.me.mailbox}/" + "0" * 64
            async with (
                aiomqtt.Client(
                    HOST, port, username=a.me.mailbox, password="alice-pw", identifier="snoop"
                ) as snoop,
                aiomqtt.Client(
                    HOST, port, username=b.me.mailbox, password="bobby-pw", identifier="bobby"
                ) as bob,
            ):
                refused = ["$MQTT/sub/#", "#", "hug/#", f"hug/v1/in/{b.me.mailbox}/+"]
                for topic in refused:
                    codes = await snoop.subscribe(topic, qos=1)
                    assert [c.is_failure for c in codes] == [True], (topic, codes)  # type: ignore[union-attr]
                for topic in (f"hug/v1/in/{a.me.mailbox}/+", "hug/v1/pr/+"):
                    codes = await snoop.subscribe(topic, qos=1)
                    assert [c.is_failure for c in codes] == [False], (topic, codes)  # type: ignore[union-attr]
                await bob.subscribe(f"hug/v1/in/{b.me.mailbox}/+", qos=1)
                await bob.publish(inbox_a, b"to alice", qos=1)
                await bob.publish(inbox_b, b"to bobby", qos=1)
                await bob.publish(pr_a, b"forged presence", qos=1, retain=True)
                await bob.publish(pr_b, b"bobby online", qos=1, retain=True)
                got: list[tuple[str, str, bytes]] = []

                async def read(client: aiomqtt.Client, who: str) -> None:
                    async for m in client.messages:
                        got.append((who, m.topic.value, bytes(m.payload)))  # pyright: ignore[reportArgumentType]

                readers = [asyncio.create_task(read(snoop, "snoop")), asyncio.create_task(read(bob, "bobby"))]
                await asyncio.sleep(1.5)
                for r in readers:
                    r.cancel()
                assert sorted(got) == sorted(
                    [
                        ("snoop", inbox_a, b"to alice"),
                        ("snoop", pr_b, b"bobby online"),
                        ("bobby", inbox_b, b"to bobby"),
                    ]
                )
            # the relay itself works under these permissions, credentials in the URL
            link = make_circle(a, b)
            ra = await a.start(f"mqtt://{a.me.mailbox}:alice-pw@{HOST}:{port}")
            await b.start(f"mqtt://{b.me.mailbox}:bobby-pw@{HOST}:{port}")
            sent = [await ra.send(link, {"n": i}) for i in range(3)]
            await b.changed.until(lambda: set(b.handled_counts()) >= set(sent))
            await a.changed.until(lambda: a.acked_ids() >= set(sent))
            await a.stop()
            await b.stop()

        run(main())
    finally:
        node.terminate()
        node.wait(10)


def test_every_topic_the_app_builds_is_valid_on_nats() -> None:
    """NATS refuses '.' and ' ' in MQTT topics (they would break its subjects)."""
    from hugapp.core import hubtunnel
    from hugapp.core.envelope import inbox_filter, inbox_topic, presence_topic, rendezvous_topic
    from hugapp.core.linking import CODE_ALPHABET, code_key

    mailbox = secrets.token_hex(16)
    topics = [
        inbox_topic(os.urandom(32), secrets.token_hex(16), mailbox),
        inbox_filter(mailbox),
        presence_topic(os.urandom(32)),
        *(rendezvous_topic(code_key(CODE_ALPHABET[:8]), side) for side in ("a", "b")),
        *(hubtunnel.topic(os.urandom(32), side) for side in (hubtunnel.DOWN, hubtunnel.UP)),
    ]
    for topic in topics:
        assert "." not in topic, topic
        assert " " not in topic, topic
        assert topic.startswith("hug/v1/"), topic
