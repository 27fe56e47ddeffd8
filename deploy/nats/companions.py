#!/usr/bin/env python3
"""Write the NATS authorization block for Hug Button companions (deploy/nats/README in ../README.md).

    python3 companions.py < companions.txt > /etc/nats/hugbutton-users.conf

Each input line is `<mailbox> <presence id> <password>`: the companion's mailbox id (32 hex, its broker
user name), its presence topic id (64 hex; both printed by `hugbutton gateway account`) and its
password, plain or a bcrypt hash ($2a$..., e.g. from `nats server passwd`). Each companion
gets the rights of deploy/acl.example, spelled as NATS subjects (MQTT topic 'a/b' is subject 'a.b'):
it reads only its own inboxes, never '#'.
"""

from __future__ import annotations

import re
import sys

MAILBOX = re.compile(r"^[0-9a-f]{32}$")
PRESENCE = re.compile(r"^[0-9a-f]{64}$")


def user_entry(mailbox: str, presence: str, password: str) -> str:
    if not MAILBOX.match(mailbox):
        raise ValueError(f"not a mailbox id (32 hex): {mailbox!r}")
    if not PRESENCE.match(presence):
        raise ValueError(f"not a presence topic id (64 hex): {presence!r}")
    if not password or '"' in password or "\\" in password:
        raise ValueError(f"unusable password for {mailbox}")
    return (
        f'    {{ user: "{mailbox}", password: "{password}", permissions: {{\n'
        # write: anyone's inbox (sealed), its own presence, the linking rendezvous, hub tunnels (sealed)
        "        publish: { allow: "
        f'["hug.v1.in.*.*", "hug.v1.pr.{presence}", "hug.v1.rv.*.*", "hug.v1.hub.*"] }}\n'
        # read: its own inboxes only, anyone's presence (sealed), the linking rendezvous, hub tunnels
        # (sealed; a tunnel's topics come from its key, so reading one needs knowing its name), and the
        # server's delivery subjects of its QoS 1 subscriptions (MQTT clients cannot name $MQTT topics)
        "        subscribe: { allow: "
        f'["hug.v1.in.{mailbox}.*", "hug.v1.pr.*", "hug.v1.rv.*.*", "hug.v1.hub.*", "$MQTT.sub.*"] }}\n'
        "    } }"
    )


def authorization(lines: list[str]) -> str:
    entries = [user_entry(*line.split()) for line in lines if line.strip() and not line.startswith("#")]
    return "authorization {\n  users = [\n" + "\n".join(entries) + "\n  ]\n}\n"


if __name__ == "__main__":
    sys.stdout.write(authorization(sys.stdin.read().splitlines()))
